"""Multi-host execution through Ansible (ansible-core run as a subprocess).

stackyard computes every host's plan on the deploy host; Ansible brings the
inventory, SSH, fan-out and ``--limit``. This package holds what we ship to
Ansible: the runner that invokes ``ansible-playbook``, our modules
(``library/``), the code they share with the local applier (``module_utils/``),
a stdout callback that prints one line per host and task, and playbooks.
"""

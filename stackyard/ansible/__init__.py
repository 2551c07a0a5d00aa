"""Multi-host execution through Ansible (ansible-core run as a subprocess).

stackyard computes every host's plan on the deploy host; Ansible brings the
inventory, SSH, fan-out and ``--limit``. This package holds what we ship to
Ansible: the runner that invokes ``ansible-playbook`` (and stages the agent
package, :mod:`stackyard.agent`, as ``ansible.module_utils.stackyard_agent``
for every run), our modules (``library/``), a stdout callback that prints one
line per host and task, and playbooks.
"""

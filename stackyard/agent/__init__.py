"""What runs on every target host: the plan model, the engine adapter, the
host-local executor and the operations (stop, destroy, check, prechecks).

Standard library and the docker SDK only, and nothing from the rest of
stackyard: Ansible ships this package to remote hosts (as
``ansible.module_utils.stackyard_agent``) where stackyard is not installed.
Modules here import each other relatively so the package works under either
name; ``tests/unit/agent/test_agent_isolation.py`` checks both rules.
"""

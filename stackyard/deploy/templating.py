"""The Jinja2 environment for operator input: globals.yml values and override files.

Sandboxed, because these files come from operators and from ``-e`` on the
command line: a template must be able to compute a value, never to reach
Python internals (``cycler.__init__.__globals__``) and run code on the
deploy host. StrictUndefined, because a misspelt variable must fail loudly
instead of silently rendering an empty string into a config file; the
``bool`` and ``ternary`` filters because kolla-ansible users write them
everywhere.
"""

from __future__ import annotations

from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Ansible's boolean spellings (ansible.module_utils.parsing.convert_bool).
TRUE_WORDS = frozenset({"yes", "true", "on", "1", "y", "t"})
FALSE_WORDS = frozenset({"no", "false", "off", "0", "n", "f"})


def to_bool(value: Any) -> bool:
    """Ansible's ``bool`` filter semantics, so ``"{{ x | bool }}"`` works as in kolla."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value == 1
    if isinstance(value, str):
        return value.strip().lower() in TRUE_WORDS
    return False


def ternary(value: Any, true_val: Any, false_val: Any, none_val: Any = None) -> Any:
    """Ansible's ``ternary`` filter (commonly used in kolla-style globals)."""
    if value is None and none_val is not None:
        return none_val
    return true_val if value else false_val


def jinja_environment() -> jinja2.Environment:
    env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                        autoescape=False)
    env.filters["bool"] = to_bool
    env.filters["ternary"] = ternary
    return env

"""The table of globals.yml keys stackyard knows: the global keys, then every service's.

Why a table and not scattered ``vars.get("x", default)`` calls: one place gives
the loader everything it needs to warn about typos (the nearest known key),
reject wrong types with a precise message, and print a reference for
operators. The table is derived: :data:`~stackyard.deploy.options.GLOBAL_OPTIONS`
plus each service's enable flag and own keys (declared in its module under
``services/``).
"""

from __future__ import annotations

import copy
from typing import Any

from stackyard.deploy import services
from stackyard.deploy.options import GLOBAL_OPTIONS, Option


def _index(options: list[Option]) -> dict[str, Option]:
    """Index options by name, refusing duplicates (a duplicate is a bug in a service module)."""
    table: dict[str, Option] = {}
    for opt in options:
        if opt.name in table:
            raise AssertionError(f"option {opt.name!r} is declared twice")
        table[opt.name] = opt
    return table


#: Every known globals.yml key, by name. Order is the reference order in docs.
OPTIONS: dict[str, Option] = _index(list(GLOBAL_OPTIONS) + services.options())


def defaults() -> dict[str, Any]:
    """A fresh copy of every default (copies, so callers may mutate lists/dicts)."""
    return {name: copy.deepcopy(opt.default) for name, opt in OPTIONS.items()}

"""Inventory sanity: every enabled service has a host, and misspelt groups are named.

Both mistakes used to shrink the plan silently: a service whose groups hold no
host is deployed nowhere, and a misspelt section such as ``[contrl]`` puts its
hosts in a group nothing reads while ``control`` stays empty. The deploy, the
plan and the prechecks stop instead, with one line per problem naming the
group (and the service, or the group it looks like a typo of).

A group that is empty because the service that reads it is disabled is fine:
only enabled services are checked. Groups stackyard does not know are fine
too (kolla-ansible's inventories have one per service it can deploy); one is
taken for a typo only when it is a near spelling of a known group (difflib
close match *and* at most :data:`MAX_TYPO_EDITS` edits) and that known group
is missing or has no host, which is what the typo caused. So ``nova-compute-ironic``
or ``neutron-ovn-metadata-agent`` beside a populated ``nova-compute`` /
``neutron-metadata-agent`` are never reported.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable

from stackyard.deploy import services
from stackyard.deploy.inventory import Inventory
from stackyard.deploy.services.base import Service
from stackyard.errors import ConfigError

#: difflib's similarity a typo must reach (``contrl`` ~ ``control`` is 0.92)
TYPO_CUTOFF = 0.8
#: at most this many single-character edits (insert, delete, replace, swap)
MAX_TYPO_EDITS = 2
#: Ansible's implicit groups
IMPLICIT_GROUPS = frozenset({"all", "ungrouped"})

#: groups -> the hosts a service placed by them runs on (plan.hosts_for_groups)
HostsOf = Callable[[tuple[str, ...]], list[str]]


def known_groups() -> set[str]:
    """The groups whose hosts stackyard reads: the roles, every group a service
    declares, and the groups those fall back to.

    Groups the built-in all-in-one only lists for kolla-ansible's sake
    (``kolla-toolbox``, ``baremetal``) are not among them: nothing reads them,
    so a near name such as kolla-ansible 2026.1's ``kolla_toolbox`` is harmless.
    """
    fallbacks = services.groups()
    known = set(services.ROLES)
    todo = [g.name for s in services.ALL.values() for g in s.groups]
    todo += [g for s in services.ALL.values() for g in s.placement_groups]
    while todo:
        group = todo.pop()
        if group not in known:
            known.add(group)
            todo.extend(fallbacks.get(group, ()))
    return known


def edits(a: str, b: str) -> int:
    """Edit distance counting a swap of two neighbours as one edit (optimal string
    alignment): ``contorl`` is one edit from ``control``."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i]
        for j, cb in enumerate(b, 1):
            cost = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cost = min(cost, prev2[j - 2] + 1)
            row.append(cost)
        prev2, prev = prev, row
    return prev[-1]


def typo_of(group: str, known: Iterable[str]) -> str | None:
    """The known group ``group`` looks like a misspelling of, if any."""
    for candidate in difflib.get_close_matches(group, list(known), n=3, cutoff=TYPO_CUTOFF):
        if edits(group, candidate) <= MAX_TYPO_EDITS:
            return candidate
    return None


def misspelt_groups(inventory: Inventory, known: set[str]) -> list[str]:
    """One line per inventory group that looks like a typo of a known group
    which the inventory leaves missing or empty."""
    problems = []
    for group in sorted(set(inventory.groups) - known - IMPLICIT_GROUPS):
        target = typo_of(group, known)
        if target is not None and not inventory.groups.get(target):
            state = "has no host" if target in inventory.groups else "is missing"
            problems.append(f"unknown inventory group '{group}': did you mean '{target}'? "
                            f"('{target}' {state})")
    return problems


def hostless_services(enabled: Iterable[Service], hosts_of: HostsOf) -> list[str]:
    """One line per enabled service that no host runs."""
    problems = []
    for service in enabled:
        groups = service.placement_groups
        if not hosts_of(groups):
            named = ", ".join(f"'{g}'" for g in groups)
            what = f"inventory group {named} has" if len(groups) == 1 else f"inventory groups {named} have"
            problems.append(f"enabled service '{service.name}' has no host: {what} no host "
                            f"(add one, or set {service.enable_flag}: no)")
    return problems


def problems(inventory: Inventory, enabled: Iterable[Service], hosts_of: HostsOf) -> list[str]:
    """Every inventory problem, typos first (they are usually why a service has no host)."""
    return misspelt_groups(inventory, known_groups()) + hostless_services(enabled, hosts_of)


def check(inventory: Inventory, enabled: Iterable[Service], hosts_of: HostsOf) -> None:
    """Raise :class:`ConfigError` with one line per problem, each naming the inventory."""
    found = problems(inventory, enabled, hosts_of)
    if found:
        raise ConfigError("\n".join(f"{inventory.source}: {p}" for p in found))

"""Every deployable service, found by scanning this package, and the registries derived from them.

Each module here (but the helpers in :data:`HELPERS`) defines ``SERVICE``, a
:class:`~.base.Service` record. Nothing else lists services: the globals.yml
schema, the password list, RabbitMQ users, HAProxy frontends, the built-in
inventory, build profiles, service users and the deploy order are all
computed below from those records, so a new service is one new module.

Deploy order: a service comes after every service it ``requires`` or is
``after``; among services free to go, alphabetical order decides, so the
order never depends on how the modules were found.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable

from stackyard.deploy.options import Option
from stackyard.deploy.services.base import Group, Password, Port, Service, User

#: modules of this package that define no service
HELPERS = frozenset({"base", "common"})

#: the group every service user belongs to (Kolla's), created in the base image
KOLLA_USER = User("kolla", 42400, "/var/lib/kolla", groups=())

#: kolla-ansible's top-level roles: the groups an operator normally edits
ROLES = ("control", "network", "compute", "storage", "monitoring", "deployment")
#: groups made of roles, as in kolla-ansible's inventories
BASE_GROUPS = (
    Group("baremetal", ("control", "network", "compute", "storage", "monitoring")),
    Group("common", ("control", "network", "compute", "storage", "monitoring")),
    Group("kolla-toolbox", ("common",)),
)


def _discover() -> list[Service]:
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.name in HELPERS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        svc = getattr(module, "SERVICE", None)
        if not isinstance(svc, Service):
            raise AssertionError(f"{module.__file__}: a service module must define SERVICE = Service(...)")
        if svc.plan is None:
            raise AssertionError(f"{module.__file__}: SERVICE has no plan()")
        found.append(svc)
    return found


def deploy_order(services: Iterable[Service]) -> list[Service]:
    """Services sorted so that each follows what it requires or is ``after``."""
    by_name = {s.name: s for s in services}
    deps: dict[str, set[str]] = {}
    for s in by_name.values():
        unknown = [d for d in s.requires if d not in by_name]
        if unknown:
            raise AssertionError(f"service {s.name} requires unknown service(s) {', '.join(unknown)}")
        deps[s.name] = {d for d in (*s.requires, *s.after) if d in by_name}
    order: list[Service] = []
    done: set[str] = set()
    while len(order) < len(by_name):
        ready = sorted(n for n in by_name if n not in done and deps[n] <= done)
        if not ready:
            stuck = sorted(n for n in by_name if n not in done)
            raise AssertionError(f"services depend on each other in a cycle: {', '.join(stuck)}")
        done.add(ready[0])
        order.append(by_name[ready[0]])
    return order


#: every service, in deploy order
ALL: dict[str, Service] = {s.name: s for s in deploy_order(_discover())}


def get(name: str) -> Service:
    return ALL[name]


def enabled(variables: dict) -> list[Service]:
    """The services ``variables`` enables, in deploy order."""
    return [s for s in ALL.values() if variables.get(s.enable_flag) is True]


# ----------------------------------------------------------------------------- registries
def options() -> list[Option]:
    """Every service's enable flag, then every service's own keys, in deploy order."""
    return [s.enable_option() for s in ALL.values()] + [o for s in ALL.values() for o in s.options]


def passwords() -> dict[str, Password]:
    """Every password key, in deploy order; a key two services share must have one kind."""
    out: dict[str, Password] = {}
    for s in ALL.values():
        for p in s.passwords:
            if p.key in out and out[p.key].kind != p.kind:
                raise AssertionError(f"password {p.key}: {s.name} says {p.kind}, another says {out[p.key].kind}")
            out.setdefault(p.key, p)
    return out


def required_passwords(services: Iterable[Service]) -> set[str]:
    return {p.key for s in services for p in s.passwords}


def users() -> dict[str, User]:
    """Every fixed service user, ``kolla`` first; a name two services share must agree."""
    out = {KOLLA_USER.name: KOLLA_USER}
    for s in ALL.values():
        for u in s.users:
            if u.name in out and out[u.name] != u:
                raise AssertionError(f"user {u.name}: {s.name} declares {u}, another {out[u.name]}")
            out[u.name] = u
    return out


def ports(services: Iterable[Service]) -> list[Port]:
    return [p for s in services for p in s.ports]


def build_profiles() -> dict[str, list[str]]:
    """Image sets for ``stackyard build --profile``: infra, core (infra + OpenStack), all."""
    infra = [i for s in ALL.values() if s.profile == "infra" for i in s.images]
    core = infra + [i for s in ALL.values() if s.profile != "infra" for i in s.images]
    return {"infra": list(dict.fromkeys(infra)), "core": list(dict.fromkeys(core)), "all": []}


def groups() -> dict[str, tuple[str, ...]]:
    """Every inventory group a deploy can place something by -> the groups it falls back to."""
    out: dict[str, tuple[str, ...]] = {g.name: g.parents for g in BASE_GROUPS}
    for s in ALL.values():
        for g in s.groups:
            if g.name in out and out[g.name] != g.parents:
                raise AssertionError(f"inventory group {g.name} declared twice with different parents")
            out[g.name] = g.parents
    return out


def all_in_one_inventory() -> str:
    """kolla-ansible's all-in-one inventory: every role on localhost, every group from the services."""
    lines = ["# Top-level roles: the only groups an operator normally edits."]
    for role in ROLES:
        lines += [f"[{role}]", "localhost ansible_connection=local", ""]
    lines.append("# Groups of roles, and every service's groups (generated from stackyard's services).")
    for name, parents in groups().items():
        lines += [f"[{name}:children]", *parents, ""]
    return "\n".join(lines)

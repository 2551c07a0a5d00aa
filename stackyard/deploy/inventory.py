"""Ansible inventories (INI and YAML) with kolla-ansible's group names.

Operators already have ``multinode`` / ``all-in-one`` files written for
kolla-ansible; reading the same files, with the same group names, means moving
to stackyard needs no inventory rewrite. We implement the static subset of
Ansible's inventory that those files use (no dynamic inventory scripts, no
group_vars/host_vars directories) and resolve it once into plain data:
``groups`` lists every host of a group including those of its child groups,
and ``hosts`` holds each host's effective variables.
"""

from __future__ import annotations

import ast
import re
import shlex
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stackyard.deploy import services
from stackyard.errors import ConfigError
from stackyard.yamlfile import parse_yaml

#: kolla-ansible's all-in-one layout: every role on localhost, and every
#: service's groups (generated from the service definitions).
ALL_IN_ONE = services.all_in_one_inventory()

ALL_IN_ONE_SOURCE = "all-in-one (built-in)"

#: Files Ansible skips when an inventory path is a directory.
_IGNORED_SUFFIXES = ("~", ".orig", ".bak", ".retry", ".cfg", ".pyc", ".pyo")
_RANGE = re.compile(r"\[([^\[\]:]+):([^\[\]:]+)(?::(\d+))?\]")


@dataclass
class Inventory:
    """A resolved inventory.

    ``hosts`` maps each host to its effective variables (``all`` group vars,
    then parent groups before child groups, then the host's own vars, as
    Ansible layers them). ``groups`` maps each group, including ``all`` and
    ``ungrouped``, to the sorted hosts in it or in any descendant group.
    """

    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)
    group_vars: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ""

    def hosts_in(self, group: str) -> list[str]:
        """Hosts in ``group`` (sorted); an unknown group is an operator error.

        Raising rather than returning ``[]`` because a misspelt or missing
        group in a hand-written inventory would otherwise silently deploy a
        service nowhere.
        """
        try:
            return list(self.groups[group])
        except KeyError:
            raise ConfigError(f"{self.source}: inventory has no group '{group}'") from None

    def groups_of(self, host: str) -> list[str]:
        """Sorted names of the groups ``host`` belongs to (directly or via children)."""
        return sorted(g for g, members in self.groups.items() if host in members)


class _Builder:
    """Accumulates raw hosts/groups from one or more files before resolving."""

    def __init__(self) -> None:
        self.host_vars: dict[str, dict[str, Any]] = {}
        self.members: dict[str, list[str]] = {"all": [], "ungrouped": []}
        self.children: dict[str, list[str]] = {"all": [], "ungrouped": []}
        self.group_vars: dict[str, dict[str, Any]] = {"all": {}, "ungrouped": {}}

    def group(self, name: str) -> None:
        self.members.setdefault(name, [])
        self.children.setdefault(name, [])
        self.group_vars.setdefault(name, {})

    def add_host(self, group: str, host: str, variables: dict[str, Any]) -> None:
        self.group(group)
        self.host_vars.setdefault(host, {}).update(variables)
        if host not in self.members[group]:
            self.members[group].append(host)

    def add_child(self, group: str, child: str) -> None:
        self.group(group)
        self.group(child)
        if child not in self.children[group]:
            self.children[group].append(child)


# --------------------------------------------------------------------------
# Host patterns
# --------------------------------------------------------------------------

def expand_hosts(pattern: str, where: str = "inventory") -> list[str]:
    """Expand ``web[01:03]`` / ``db-[a:c]`` / ``n[0:10:5]`` into host names.

    Numeric bounds keep the width of the start (``01`` → ``01, 02``) as
    Ansible does; several ranges in one name multiply out.
    """
    match = _RANGE.search(pattern)
    if not match:
        return [pattern]
    start, end, stride_text = match.group(1), match.group(2), match.group(3)
    stride = int(stride_text) if stride_text else 1
    if stride < 1:
        raise ConfigError(f"{where}: bad range stride in host pattern '{pattern}'")
    if start.isdigit() and end.isdigit():
        width = len(start) if start.startswith("0") else 0
        values = [str(i).zfill(width) for i in range(int(start), int(end) + 1, stride)]
    elif (len(start) == len(end) == 1 and start in string.ascii_letters
          and end in string.ascii_letters):
        values = [chr(c) for c in range(ord(start), ord(end) + 1, stride)]
    else:
        raise ConfigError(f"{where}: bad range in host pattern '{pattern}' "
                          f"(use [01:10] or [a:f])")
    if not values:
        raise ConfigError(f"{where}: empty range in host pattern '{pattern}'")
    head, tail = pattern[:match.start()], pattern[match.end():]
    return [host for v in values for host in expand_hosts(head + v + tail, where)]


def _host_and_port(token: str) -> tuple[str, dict[str, Any]]:
    """Split Ansible's ``host:port`` shorthand into the name and ``ansible_port``."""
    if token.count(":") == 1:
        host, port = token.split(":")
        if port.isdigit():
            return host, {"ansible_port": int(port)}
    return token, {}


def _literal(text: str) -> Any:
    """Host-line values are Python literals when they parse as one (Ansible rule)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


# --------------------------------------------------------------------------
# INI
# --------------------------------------------------------------------------

def _split(line: str, where: str) -> list[str]:
    try:
        return shlex.split(line, comments=True)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}: {line!r}") from exc


def _key_value(token: str, where: str) -> tuple[str, str]:
    key, sep, value = token.partition("=")
    if not sep or not key:
        raise ConfigError(f"{where}: expected key=value, got {token!r}")
    return key, value


def _parse_ini(text: str, source: str, builder: _Builder) -> None:
    """Parse Ansible's INI format into ``builder``."""
    group, kind = "ungrouped", "hosts"
    for lineno, raw in enumerate(text.splitlines(), 1):
        where = f"{source}:{lineno}"
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            match = re.fullmatch(r"\[([^\]\s]+?)(?::(\w+))?\]\s*(?:[#;].*)?", line)
            if not match:
                raise ConfigError(f"{where}: invalid section header {line!r}")
            group, kind = match.group(1), match.group(2) or "hosts"
            if kind not in ("hosts", "children", "vars"):
                raise ConfigError(f"{where}: unknown section type ':{kind}' in {line!r} "
                                  f"(expected :children or :vars)")
            builder.group(group)
            continue
        if kind == "hosts":
            tokens = _split(line, where)
            if not tokens:
                continue
            name, port_vars = _host_and_port(tokens[0])
            variables: dict[str, Any] = dict(port_vars)
            for token in tokens[1:]:
                key, value = _key_value(token, where)
                variables[key] = _literal(value)
            for host in expand_hosts(name, where):
                builder.add_host(group, host, variables)
        elif kind == "children":
            tokens = _split(line, where)
            if len(tokens) != 1:
                raise ConfigError(f"{where}: expected one group name per line in "
                                  f"[{group}:children], got {line!r}")
            builder.add_child(group, tokens[0])
        else:  # vars: values stay strings (Ansible's rule for :vars sections)
            key, value = _key_value(line, where)
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            builder.group_vars[group][key.strip()] = value


# --------------------------------------------------------------------------
# YAML
# --------------------------------------------------------------------------

def _parse_yaml(text: str, source: str, builder: _Builder) -> None:
    """Parse Ansible's YAML format (``all: {hosts, vars, children}``) into ``builder``."""
    data = parse_yaml(text, source)
    if data is None:
        return
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a YAML inventory must be a mapping of groups")
    for name, body in data.items():
        _yaml_group(str(name), body, source, builder)


def _yaml_group(name: str, body: Any, source: str, builder: _Builder) -> None:
    builder.group(name)
    if body is None:
        return
    if not isinstance(body, dict):
        raise ConfigError(f"{source}: group '{name}' must be a mapping with hosts, "
                          f"vars or children")
    unknown = set(body) - {"hosts", "vars", "children"}
    if unknown:
        raise ConfigError(f"{source}: group '{name}' has unknown key(s) "
                          f"{', '.join(sorted(map(str, unknown)))} "
                          f"(expected hosts, vars, children)")
    hosts = body.get("hosts") or {}
    if not isinstance(hosts, dict):
        raise ConfigError(f"{source}: 'hosts' of group '{name}' must be a mapping")
    for pattern, host_vars in hosts.items():
        if host_vars is not None and not isinstance(host_vars, dict):
            raise ConfigError(f"{source}: variables of host '{pattern}' in group "
                              f"'{name}' must be a mapping")
        host_name, port_vars = _host_and_port(str(pattern))
        for host in expand_hosts(host_name, source):
            builder.add_host(name, host, {**port_vars, **(host_vars or {})})
    group_vars = body.get("vars") or {}
    if not isinstance(group_vars, dict):
        raise ConfigError(f"{source}: 'vars' of group '{name}' must be a mapping")
    builder.group_vars[name].update(group_vars)
    children = body.get("children") or {}
    if not isinstance(children, dict):
        raise ConfigError(f"{source}: 'children' of group '{name}' must be a mapping")
    for child, child_body in children.items():
        builder.add_child(name, str(child))
        _yaml_group(str(child), child_body, source, builder)


# --------------------------------------------------------------------------
# Resolution
# --------------------------------------------------------------------------

def _resolve(builder: _Builder, source: str) -> Inventory:
    """Resolve children recursively, detect cycles, layer variables."""
    resolved: dict[str, set[str]] = {}

    def visit(group: str, path: list[str]) -> set[str]:
        if group in path:
            cycle = path[path.index(group):] + [group]
            raise ConfigError(f"{source}: inventory group cycle: {' -> '.join(cycle)}")
        if group in resolved:
            return resolved[group]
        hosts = set(builder.members[group])
        for child in builder.children[group]:
            hosts |= visit(child, path + [group])
        resolved[group] = hosts
        return hosts

    for group in builder.members:
        visit(group, [])

    grouped = {h for g, hs in resolved.items() if g not in ("all", "ungrouped") for h in hs}
    resolved["all"] = set(builder.host_vars)
    resolved["ungrouped"] = set(builder.host_vars) - grouped

    # Depth from "all" decides variable precedence: parents before children.
    parents: dict[str, list[str]] = {g: [] for g in builder.members}
    for group, kids in builder.children.items():
        for kid in kids:
            parents[kid].append(group)
    depth_cache: dict[str, int] = {}

    def depth(group: str) -> int:
        if group == "all":
            return 0
        if group not in depth_cache:
            ups = [p for p in parents[group] if p != "all"]
            depth_cache[group] = 1 + max((depth(p) for p in ups), default=0)
        return depth_cache[group]

    order = sorted((g for g in builder.members if g != "all"), key=lambda g: (depth(g), g))
    hosts: dict[str, dict[str, Any]] = {}
    for host, own in builder.host_vars.items():
        merged = dict(builder.group_vars["all"])
        for group in order:
            if host in resolved[group]:
                merged.update(builder.group_vars[group])
        merged.update(own)
        hosts[host] = merged

    return Inventory(
        hosts=hosts,
        groups={g: sorted(resolved[g]) for g in builder.members},
        children={g: list(kids) for g, kids in builder.children.items()},
        group_vars={g: dict(v) for g, v in builder.group_vars.items()},
        source=source,
    )


def _looks_like_yaml(path: Path, text: str) -> bool:
    """Pick the parser: by extension, else by the first meaningful line."""
    if path.suffix in (".yml", ".yaml", ".json"):
        return True
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") or "=" in line:
            return False
        break
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    return isinstance(data, dict) and all(v is None or isinstance(v, dict)
                                          for v in data.values())


def parse_inventory(text: str, source: str = "inventory", yaml_format: bool = False
                    ) -> Inventory:
    """Parse one inventory given as text (INI unless ``yaml_format``)."""
    builder = _Builder()
    (_parse_yaml if yaml_format else _parse_ini)(text, source, builder)
    return _resolve(builder, source)


def _inventory_files(path: Path) -> list[Path]:
    """A file, or the inventory files of a directory in name order."""
    if path.is_dir():
        return [p for p in sorted(path.iterdir())
                if p.is_file() and not p.name.startswith(".")
                and not p.name.endswith(_IGNORED_SUFFIXES)]
    return [path]


def load_inventory(paths: list[Path] | None = None) -> Inventory:
    """Load and merge inventory files; ``None`` or ``[]`` means the built-in all-in-one.

    A path that does not exist is an error, except the bare name
    ``all-in-one``, which kolla-ansible users pass out of habit and which
    means the built-in layout.
    """
    if not paths:
        return parse_inventory(ALL_IN_ONE, ALL_IN_ONE_SOURCE)
    builder = _Builder()
    sources = []
    for path in map(Path, paths):
        if not path.exists():
            if str(path) == "all-in-one":
                _parse_ini(ALL_IN_ONE, ALL_IN_ONE_SOURCE, builder)
                sources.append(ALL_IN_ONE_SOURCE)
                continue
            raise ConfigError(f"{path}: inventory file not found")
        for file in _inventory_files(path):
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{file}: cannot read inventory: {exc}") from exc
            if _looks_like_yaml(file, text):
                _parse_yaml(text, str(file), builder)
            else:
                _parse_ini(text, str(file), builder)
            sources.append(str(file))
    return _resolve(builder, ", ".join(sources))

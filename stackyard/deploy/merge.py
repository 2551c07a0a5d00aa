"""Operator overrides: find them, render them, merge them into service INI files.

kolla-ansible lets an operator drop ``/etc/kolla/config/nova.conf`` (and
more specific files) to change any option; we keep the same file names and
the same merge rules so those directories work unchanged:

* files are read with oslo.config's own INI parser, so anything the services
  would accept (``:`` separators, quoted values, continuation lines) we accept
  too, and anything they would reject fails here, at plan time, with the file
  and line;
* a later file replaces *all* values of a key it sets, while a key repeated
  within one file stays multi-valued (oslo.config's MultiStrOpt semantics);
* the output is deterministic (base file order, new keys appended), so the
  config hash only changes when an option really changed - which is what
  decides whether a container restarts.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jinja2
from oslo_config import iniparser

from stackyard.deploy.config import jinja_environment
from stackyard.errors import ConfigError

#: Parsed INI: section → key → values (more than one for repeated keys).
IniData = dict[str, dict[str, list[str]]]

OVERRIDES_DIR = "config"
_QUOTES = ("'", '"')


class _Parser(iniparser.BaseParser):
    """Collects assignments into :data:`IniData`, keeping order and repeats."""

    def __init__(self) -> None:
        super().__init__()
        self.data: IniData = {}
        self.section: str | None = None

    def new_section(self, section: str) -> None:
        self.section = section
        self.data.setdefault(section, {})

    def assignment(self, key: str, value: list[str]) -> None:
        if self.section is None:
            # oslo.config refuses this too; a key outside any section is lost.
            raise self.parse_exc("Section must be started before assignment",
                                 self.lineno, key)
        self.data[self.section].setdefault(key, []).append("\n".join(value))


def parse_ini(text: str, source: str = "<string>") -> IniData:
    """Parse INI ``text`` the way oslo.config would; errors name ``source`` and line."""
    parser = _Parser()
    try:
        parser.parse(text.splitlines())
    except iniparser.ParseError as exc:
        raise ConfigError(f"{source}:{exc.lineno}: {exc.msg}: {exc.line!r}") from exc
    return parser.data


def merge_ini(base: IniData, *overrides: IniData) -> IniData:
    """Layer ``overrides`` over ``base``; a later key replaces all earlier values.

    Existing sections and keys keep their position; new ones are appended in
    the order they first appear, so the result does not depend on dict
    iteration tricks and hashes stay stable.
    """
    result = copy.deepcopy(base)
    for override in overrides:
        for section, options in override.items():
            target = result.setdefault(section, {})
            for key, values in options.items():
                target[key] = list(values)
    return result


def _format_value(value: str) -> str:
    """Write a value so oslo.config reads back exactly ``value``.

    The parser strips one pair of matching outer quotes, so a value that is
    itself quoted gets an extra pair; continuation lines are indented.
    """
    if len(value) >= 2 and value[0] == value[-1] and value[0] in _QUOTES:
        value = f'"{value}"'
    first, *rest = value.split("\n")
    return "\n".join([first] + [f"    {line}" for line in rest if line.strip()])


def serialize_ini(data: Mapping[str, Mapping[str, list[str]]]) -> str:
    """Render :data:`IniData` as INI text (``key = value``, one line per value).

    ``[DEFAULT]`` is written first wherever it appeared, because that is where
    every OpenStack sample config and every operator looks for it; all other
    sections keep their order. A repeated key is written once per value.
    """
    blocks = []
    ordered = sorted(data.items(), key=lambda item: item[0] != "DEFAULT")
    for section, options in ordered:
        lines = [f"[{section}]"]
        for key, values in options.items():
            for value in values:
                lines.append(f"{key} = {_format_value(value)}".rstrip(" "))
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def merge_texts(sources: Iterable[tuple[str, str]]) -> str:
    """Parse each ``(source, text)`` pair, merge in order, serialize.

    The first pair is normally our generated config, the rest the rendered
    overrides from :func:`find_overrides`.
    """
    parsed = [parse_ini(text, source) for source, text in sources]
    if not parsed:
        return ""
    return serialize_ini(merge_ini(parsed[0], *parsed[1:]))


def find_overrides(config_dir: Path, project: str, service: str, host: str) -> list[Path]:
    """Existing override files for ``service`` on ``host``, least specific first.

    ``config_dir`` is the directory holding globals.yml (``/etc/kolla``); the
    files live under its ``config/`` subdirectory, looked up in this order::

        config/global.conf
        config/<project>.conf
        config/<project>/<service>.conf
        config/<project>/<host>/<project>.conf   (kolla-ansible's per-host name)
        config/<project>/<host>/<service>.conf

    The per-host ``<project>.conf`` is what kolla-ansible reads, so it is kept
    for compatibility; the per-host ``<service>.conf`` is the most specific.
    """
    root = Path(config_dir) / OVERRIDES_DIR
    candidates = [
        root / "global.conf",
        root / f"{project}.conf",
        root / project / f"{service}.conf",
        root / project / host / f"{project}.conf",
        root / project / host / f"{service}.conf",
    ]
    found: list[Path] = []
    for path in candidates:
        if path.is_file() and path not in found:
            found.append(path)
    return found


def render_override(path: Path, variables: Mapping[str, Any]) -> str:
    """Render override ``path`` as a Jinja2 template against ``variables``.

    Overrides are templates in kolla-ansible (``{{ kolla_internal_fqdn }}``
    is common), and StrictUndefined makes a misspelt variable an error naming
    the file instead of an empty option in a running service.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read override: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: override is not UTF-8 text ({exc.reason})") from exc
    env = jinja_environment()
    try:
        return env.from_string(text).render(**variables)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: template syntax error: {exc.message}") from exc
    except jinja2.UndefinedError as exc:
        raise ConfigError(f"{path}: undefined variable in override: {exc.message}") from exc
    except Exception as exc:  # filter errors and the like
        raise ConfigError(f"{path}: override failed to render: "
                          f"{type(exc).__name__}: {exc}") from exc


def render_and_merge(base_text: str, base_source: str, overrides: Iterable[Path],
                     variables: Mapping[str, Any]) -> str:
    """Our generated INI with every override rendered and merged over it, in order."""
    pairs = [(base_source, base_text)]
    pairs += [(str(path), render_override(path, variables)) for path in overrides]
    return merge_texts(pairs)


def unused_overrides(config_dir: Path, used: set[Path]) -> list[Path]:
    """Files under ``config_dir/config`` that no service read, sorted.

    Reported as a warning because a file nothing reads is almost always a
    misnamed one (``nova/nova_api.conf`` for ``nova/nova-api.conf``), and the
    operator otherwise believes the change is live. Hidden files and editor
    backups (``*~``, ``*.swp``) are ignored.
    """
    root = Path(config_dir) / OVERRIDES_DIR
    if not root.is_dir():
        return []
    seen = {Path(p).resolve() for p in used}
    unused = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or path.name.endswith(
                ("~", ".swp", ".bak", ".orig")):
            continue
        if path.resolve() not in seen:
            unused.append(path)
    return unused

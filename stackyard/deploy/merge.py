"""Operator overrides: render them and merge them into the services' config data.

Which files a service reads is declared in its module (``overrides`` patterns,
looked up by :meth:`stackyard.deploy.context.PlanContext.overrides`); this
module parses, renders, merges and writes.

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

from stackyard.deploy.templating import jinja_environment
from stackyard.errors import ConfigError

#: Parsed INI: section → key → values (more than one for repeated keys).
IniData = dict[str, dict[str, list[str]]]
#: One value as a service writes it: a bool is written true/false, a number
#: as text, a list as the key repeated once per item (a multi-valued option),
#: None not at all.
IniValue = str | int | float | bool | list[str] | None
#: A config file as a service builds it: section → key → value.
IniConf = dict[str, dict[str, IniValue]]

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


def _text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def ini_data(conf: IniConf) -> IniData:
    """A service's config (:data:`IniConf`) as :data:`IniData`, in the same order."""
    out: IniData = {}
    for section, options in conf.items():
        target = out.setdefault(section, {})
        for key, value in options.items():
            if value is None:
                continue
            target[key] = [_text(v) for v in value] if isinstance(value, list) else [_text(value)]
    return out


def render_ini(conf: IniConf) -> str:
    """A service's config as INI text, with no overrides (uWSGI files and the like)."""
    return serialize_ini(ini_data(conf))


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


def render_and_merge(base: IniConf, overrides: Iterable[Path], variables: Mapping[str, Any]) -> str:
    """Our generated config with every override rendered and merged over it, in order."""
    layers = [parse_ini(render_override(path, variables), str(path)) for path in overrides]
    return serialize_ini(merge_ini(ini_data(base), *layers))


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

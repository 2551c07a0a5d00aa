"""Load and validate globals.yml into the variables every deploy step reads.

The result is a plain dict (defaults, then globals.yml, then ``-e`` extra vars)
in which every known key has its declared type and every Jinja string has
been rendered. Validation happens here, once, so later steps can trust the
values and an operator sees every mistake before anything touches a host:

* a typo in a key is a *warning* naming the nearest known key, because
  kolla-ansible has hundreds of keys we do not implement and refusing them
  would make existing files unusable;
* a wrong type or an impossible service combination is an *error* naming the
  file, the line and the key, because continuing would fail later and far
  from the cause.
"""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import yaml

from stackyard.deploy import services
from stackyard.deploy.options import Option
from stackyard.deploy.schema import OPTIONS, defaults
from stackyard.deploy.templating import FALSE_WORDS, TRUE_WORDS, jinja_environment
from stackyard.errors import ConfigError
from stackyard.yamlfile import parse_yaml

GLOBALS_FILE = "globals.yml"
GLOBALS_DIR = "globals.d"
DEFAULT_SOURCE = "built-in defaults"
EXTRA_SOURCE = "extra vars"

_TYPE_NAMES = {str: "a string", bool: "a boolean (yes/no/true/false)",
               int: "an integer", list: "a list", dict: "a mapping"}
_SINGLE_EXPR = re.compile(r"^\s*\{\{(?P<expr>.*?)\}\}\s*$", re.DOTALL)


# --------------------------------------------------------------------------
# Type coercion
# --------------------------------------------------------------------------

def _where(source: str, key: str, lines: Mapping[str, int]) -> str:
    """``file:line`` when the line is known, so the operator can jump to it."""
    line = lines.get(key)
    return f"{source}:{line}" if line else source


def coerce(opt: Option, value: Any, where: str) -> tuple[Any, str | None]:
    """Convert ``value`` to ``opt.type`` the way Ansible would accept it.

    Returns ``(value, warning or None)``. Strings are accepted for booleans
    (``"yes"``) and integers (``"5000"``) because ``-e key=value`` and templated
    values always arrive as strings. Raises :class:`ConfigError` naming
    ``where`` and the key otherwise.
    """
    kind = opt.type
    warning = None

    def fail() -> ConfigError:
        return ConfigError(f"{where}: '{opt.name}' must be {_TYPE_NAMES[kind]}, "
                           f"got {value!r} ({type(value).__name__})")

    if kind is bool:
        if isinstance(value, bool):
            result: Any = value
        elif isinstance(value, int) and value in (0, 1):
            result = bool(value)
        elif isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
            result = value.strip().lower() in TRUE_WORDS
        else:
            raise fail()
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            result = value
        elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            result = int(value)
        else:
            raise fail()
    elif kind is str:
        if isinstance(value, str):
            result = value
        elif value is None:
            # ``docker_registry:`` with nothing after it means "empty" to YAML users.
            result = ""
        elif isinstance(value, int) and not isinstance(value, bool):
            result = str(value)
        elif isinstance(value, float):
            # YAML reads 2025.10 as 2025.1; accept but say how to be safe.
            result = str(value)
            warning = (f"{where}: '{opt.name}' is the number {value!r}; quote it "
                       f"(\"{value}\") so YAML keeps it a string")
        else:
            raise fail()
    elif kind is list:
        if isinstance(value, (list, tuple)):
            result = list(value)
        else:
            raise fail()
    elif kind is dict:
        if isinstance(value, dict):
            result = value
        else:
            raise fail()
    else:  # pragma: no cover - schema bug
        raise AssertionError(f"unsupported type {kind!r} for {opt.name}")

    if opt.choices is not None and result not in opt.choices:
        raise ConfigError(f"{where}: '{opt.name}' must be one of "
                          f"{', '.join(opt.choices)}; got {result!r} ({opt.help})")
    if opt.pattern is not None and not re.fullmatch(opt.pattern, str(result)):
        raise ConfigError(f"{where}: '{opt.name}' must match {opt.pattern}; got {result!r}")
    return result, warning


# --------------------------------------------------------------------------
# Jinja rendering of derived values
# --------------------------------------------------------------------------

def _is_templated(value: Any) -> bool:
    """True if ``value`` (or anything nested in it) holds a ``{{`` expression."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, list):
        return any(_is_templated(v) for v in value)
    if isinstance(value, dict):
        return any(_is_templated(v) for v in value.values())
    return False


def _template_strings(value: Any) -> Iterable[str]:
    """Every templated string nested in ``value``."""
    if isinstance(value, str):
        if _is_templated(value):
            yield value
    elif isinstance(value, list):
        for v in value:
            yield from _template_strings(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _template_strings(v)


def _render_value(env: jinja2.Environment, value: Any, context: Mapping[str, Any]) -> Any:
    """Render every string in ``value``.

    A string that is exactly one ``{{ expr }}`` keeps the expression's native
    type (a bool stays a bool, a list a list), as Ansible does; anything else
    renders to text.
    """
    if isinstance(value, list):
        return [_render_value(env, v, context) for v in value]
    if isinstance(value, dict):
        return {k: _render_value(env, v, context) for k, v in value.items()}
    if not isinstance(value, str) or not _is_templated(value):
        return value
    match = _SINGLE_EXPR.match(value)
    if match and "{{" not in match["expr"] and "}}" not in match["expr"]:
        result = env.compile_expression(match["expr"], undefined_to_none=False)(**context)
        if isinstance(result, jinja2.Undefined):
            str(result)  # StrictUndefined raises UndefinedError naming the variable
        return result
    return env.from_string(value).render(**context)


def _render_templates(variables: dict[str, Any], sources: Mapping[str, str],
                      lines: Mapping[str, int], warnings: list[str]) -> None:
    """Render templated values in dependency order, coercing known keys after.

    Dependency order (rather than blind repeated passes) means a value is only
    rendered once everything it refers to is final, so ``"{{ x | int + 1 }}"``
    never sees an unrendered ``x``; keys left over form a cycle.
    """
    env = jinja_environment()
    pending: dict[str, set[str]] = {}
    for key, value in variables.items():
        if not _is_templated(value):
            continue
        names: set[str] = set()
        for text in _template_strings(value):
            try:
                names |= jinja2.meta.find_undeclared_variables(env.parse(text))
            except jinja2.TemplateSyntaxError as exc:
                raise ConfigError(f"{_where(sources[key], key, lines)}: '{key}' is not a "
                                  f"valid template ({exc.message}): {text!r}") from exc
        pending[key] = names

    while pending:
        ready = [k for k, names in pending.items() if not names & pending.keys()]
        if not ready:
            stuck = sorted(k for k, names in pending.items() if names & pending.keys())
            raise ConfigError(
                f"{_where(sources[stuck[0]], stuck[0], lines)}: template values refer to "
                f"each other in a cycle: {', '.join(stuck)}")
        for key in ready:
            where = _where(sources[key], key, lines)
            raw = variables[key]
            try:
                rendered = _render_value(env, raw, variables)
            except jinja2.UndefinedError as exc:
                raise ConfigError(f"{where}: '{key}' refers to an undefined variable "
                                  f"({exc.message}) in {raw!r}") from exc
            except jinja2.TemplateError as exc:
                raise ConfigError(f"{where}: '{key}' failed to render ({exc}) "
                                  f"from {raw!r}") from exc
            except Exception as exc:  # filters raise TypeError/ValueError etc.
                raise ConfigError(f"{where}: '{key}' failed to render "
                                  f"({type(exc).__name__}: {exc}) from {raw!r}") from exc
            opt = OPTIONS.get(key)
            if opt is not None:
                if isinstance(rendered, str) and opt.type in (list, dict):
                    rendered = _literal(rendered)
                rendered, warning = coerce(opt, rendered, f"{where} (rendered from {raw!r})")
                if warning:
                    warnings.append(warning)
            variables[key] = rendered
            del pending[key]


def _literal(text: str) -> Any:
    """Turn a rendered ``"['a', 'b']"`` back into a list (Ansible does the same)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


# --------------------------------------------------------------------------
# File loading
# --------------------------------------------------------------------------

def _read_yaml_mapping(path: Path) -> tuple[dict[str, Any], dict[str, int], list[str]]:
    """Parse ``path`` into (mapping, key → line number, warnings).

    Line numbers come from a second pass over the node tree so errors can
    point at ``globals.yml:12`` instead of making the operator search.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    data = parse_yaml(text, str(path))
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if data is None:
        return {}, {}, []  # empty or comments only: all defaults
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of key: value, "
                          f"got {type(data).__name__}")
    lines: dict[str, int] = {}
    warnings: list[str] = []
    if isinstance(root, yaml.MappingNode):
        for key_node, _ in root.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in lines:
                warnings.append(f"{path}:{line}: duplicate key '{key}' (first at line "
                                f"{lines[key]}); the last value wins")
            lines[key] = line
    for key in data:
        if not isinstance(key, str):
            raise ConfigError(f"{path}: key {key!r} must be a string "
                              f"(quote it if it is a YAML boolean or number)")
    return data, lines, warnings


def _unknown_key_warning(where: str, key: str) -> str:
    """Warn about an unknown key, naming the closest known one when there is one.

    The 0.8 cutoff suggests real typos (``enable_keystonee``) but not unrelated
    kolla-ansible keys (``enable_haproxy`` is not a misspelt ``enable_cron``).
    """
    close = difflib.get_close_matches(key, OPTIONS.keys(), n=1, cutoff=0.8)
    hint = f"did you mean '{close[0]}'?" if close else "not used by stackyard"
    return f"{where}: unknown key '{key}' ({hint})"


def globals_d_files(configdir: Path, warnings: list[str]) -> list[Path]:
    """``globals.d/*.yml`` in name order: merged after globals.yml (later wins), as kolla-ansible
    passes each as ``-e @file``. kolla-ansible reads ``*.yml`` only, so a ``*.yaml`` file there is
    named in a warning rather than silently skipped or silently read."""
    d = configdir / GLOBALS_DIR
    if not d.is_dir():
        return []
    for other in sorted(d.glob("*.yaml")):
        warnings.append(f"{other}: not read (globals.d takes *.yml files only, as kolla-ansible does)")
    return sorted(p for p in d.glob("*.yml") if p.is_file())


def load_globals(configdir: Path, extra_vars: dict[str, Any] | None = None
                 ) -> tuple[dict[str, Any], list[str]]:
    """Return ``(variables, warnings)`` for the deploy.

    ``variables`` holds every known key (default → ``configdir/globals.yml`` →
    ``configdir/globals.d/*.yml`` in name order → ``extra_vars``, later wins),
    typed and with templates rendered. Unknown keys are kept too (overrides may
    refer to them, as in kolla-ansible) but produce a warning. A missing globals.yml is fine: all defaults.

    Raises :class:`ConfigError` for unreadable/invalid YAML, a non-mapping
    file, a wrongly typed value, a template that fails to render, or an
    enabled service whose dependency is disabled.
    """
    path = Path(configdir) / GLOBALS_FILE
    warnings: list[str] = []
    layers: list[tuple[Mapping[str, Any], str, Mapping[str, int]]] = []
    if path.exists():
        file_vars, lines, warnings = _read_yaml_mapping(path)
        layers.append((file_vars, str(path), lines))
    for extra in globals_d_files(Path(configdir), warnings):
        data, lines, more = _read_yaml_mapping(extra)
        warnings += more
        layers.append((data, str(extra), lines))
    layers.append((extra_vars or {}, EXTRA_SOURCE, {}))

    variables = defaults()
    sources = dict.fromkeys(variables, DEFAULT_SOURCE)
    #: key -> its line in the file whose value won (for file:line in errors)
    file_lines: dict[str, int] = {}
    for layer, source, lines in layers:
        for key, value in layer.items():
            if not isinstance(key, str):
                raise ConfigError(f"{source}: key {key!r} must be a string")
            if key not in OPTIONS:
                warnings.append(_unknown_key_warning(source, key))
            variables[key] = value
            sources[key] = source
            if key in lines:
                file_lines[key] = lines[key]
            else:
                file_lines.pop(key, None)

    # Coerce literal values first so templates see real booleans and ints.
    for key, opt in OPTIONS.items():
        value = variables[key]
        if _is_templated(value):
            continue
        variables[key], warning = coerce(opt, value, _where(sources[key], key, file_lines))
        if warning:
            warnings.append(warning)

    _render_templates(variables, sources, file_lines, warnings)
    check_unsupported(variables, sources, file_lines)
    check_dependencies(variables, sources)
    return variables, warnings


# --------------------------------------------------------------------------
# Services
# --------------------------------------------------------------------------

def enabled_services(variables: Mapping[str, Any]) -> list[str]:
    """Names of enabled services, in deploy order."""
    return [s.name for s in services.enabled(dict(variables))]


def check_unsupported(variables: Mapping[str, Any], sources: Mapping[str, str],
                      lines: Mapping[str, int]) -> None:
    """Refuse a kolla-ansible key set to a value stackyard does not implement.

    Compared with the key's rendered default, so a derived default
    (``"{{ keystone_public_port }}"``) follows the key it comes from.
    """
    defaults_only = {k: o for k, o in OPTIONS.items() if o.unsupported and sources.get(k) != DEFAULT_SOURCE}
    if not defaults_only:
        return
    raw = defaults()
    rendered = {**variables, **{k: raw[k] for k in defaults_only}}
    _render_templates(rendered, dict.fromkeys(rendered, DEFAULT_SOURCE), {}, [])
    for key, opt in defaults_only.items():
        if variables[key] != rendered[key]:
            raise ConfigError(f"{_where(sources[key], key, lines)}: '{key}' is {variables[key]!r}, but "
                              f"{opt.unsupported} (only {rendered[key]!r} is accepted)")


def check_dependencies(variables: Mapping[str, Any],
                       sources: Mapping[str, str] | None = None) -> None:
    """Refuse an enabled service whose dependency is disabled.

    Caught here rather than at deploy time because otherwise Nova would be
    half-deployed before discovering there is no Placement to register with.
    """
    sources = sources or {}
    problems = []
    for svc in services.ALL.values():
        if variables.get(svc.enable_flag) is not True:
            continue
        for dep in svc.requires:
            flag = services.get(dep).enable_flag
            if variables.get(flag) is not True:
                dep_origin = sources.get(flag, DEFAULT_SOURCE)
                origin = sources.get(svc.enable_flag, DEFAULT_SOURCE)
                problems.append(f"'{svc.name}' needs '{dep}': {svc.enable_flag} is true "
                                f"(from {origin}) but {flag} is false "
                                f"(from {dep_origin}); enable {dep} or disable {svc.name}")
    if problems:
        raise ConfigError("; ".join(problems))

"""Which tests run: ``smoke``, ``full``, regexes or any union of them, minus an exclude list with a
reason per line (pure)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stackyard.errors import ConfigError

#: devstack's tempest-full selection: every API and scenario test not tagged slow
FULL_REGEX = r"(?!.*\[.*\bslow\b.*\])(^tempest\.(api|scenario))"
#: what ``tempest run --smoke`` selects: tests whose attribute list holds ``smoke``
SMOKE_REGEX = r"\[.*\bsmoke\b.*\]"


@dataclass(frozen=True)
class Exclusion:
    regex: str
    reason: str
    line: int


@dataclass(frozen=True)
class Selection:
    """What to pass to ``tempest run`` (besides the config file and the concurrency)."""

    name: str
    args: tuple[str, ...]
    exclusions: tuple[Exclusion, ...] = ()


def parse_exclude_list(path: Path) -> tuple[Exclusion, ...]:
    """``REGEX  # reason`` per line; blank lines and whole-line comments are skipped.

    A line without a reason, or whose regex does not compile, is an error naming
    the file and the line: a known issue is skipped knowingly, never silently.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the exclude list: {exc.strerror}") from None
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        regex, sep, reason = line.partition("#")
        regex, reason = regex.strip(), reason.strip()
        if not sep or not reason:
            raise ConfigError(f"{path}:{n}: '{regex}' has no reason: write it as 'REGEX  # why it is skipped'")
        try:
            re.compile(regex)
        except re.error as exc:
            raise ConfigError(f"{path}:{n}: '{regex}' is not a regular expression ({exc})") from None
        out.append(Exclusion(regex, reason, n))
    return tuple(out)


def _regex(pattern: str) -> str:
    if pattern == "smoke":
        return SMOKE_REGEX
    if pattern == "full":
        return FULL_REGEX
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"verify: '{pattern}' is neither smoke, full nor a regular expression ({exc})") from None
    return pattern


def select(patterns: str | Sequence[str], exclude_list: Path | None = None) -> Selection:
    """``smoke`` (tests tagged smoke), ``full`` (:data:`FULL_REGEX`), any regex over test ids, or
    several of these: one Tempest run of their union, so its workers stay busy to the end and the
    cloud's facts, the guest upload and Tempest's start are paid once."""
    names = [patterns] if isinstance(patterns, str) else list(patterns)
    if not names:
        raise ConfigError("verify: no test selection given (smoke, full or a regex)")
    if names == ["smoke"]:
        args: tuple[str, ...] = ("--smoke",)
    elif len(names) == 1:
        args = ("--regex", _regex(names[0]))
    else:
        args = ("--regex", "|".join(f"(?:{_regex(n)})" for n in names))
    exclusions = parse_exclude_list(exclude_list) if exclude_list else ()
    return Selection(" ".join(names), args, exclusions)


def exclude_file_text(exclusions: tuple[Exclusion, ...]) -> str:
    """The exclude list as Tempest reads it: one regex per line."""
    return "".join(f"{e.regex}\n" for e in exclusions)


def excluded_by(test_id: str, exclusions: tuple[Exclusion, ...]) -> Exclusion | None:
    for e in exclusions:
        if re.search(e.regex, test_id):
            return e
    return None

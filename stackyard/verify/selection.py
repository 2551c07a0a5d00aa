"""Which tests run: ``smoke``, ``full`` or a regex, minus an exclude list with a reason per line (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from stackyard.errors import ConfigError

#: devstack's tempest-full selection: every API and scenario test not tagged slow
FULL_REGEX = r"(?!.*\[.*\bslow\b.*\])(^tempest\.(api|scenario))"


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


def select(pattern: str, exclude_list: Path | None = None) -> Selection:
    """``smoke`` (tests tagged smoke), ``full`` (:data:`FULL_REGEX`) or any regex over test ids."""
    if pattern == "smoke":
        args: tuple[str, ...] = ("--smoke",)
    elif pattern == "full":
        args = ("--regex", FULL_REGEX)
    else:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"verify: '{pattern}' is neither smoke, full nor a regular expression ({exc})") from None
        args = ("--regex", pattern)
    exclusions = parse_exclude_list(exclude_list) if exclude_list else ()
    return Selection(pattern, args, exclusions)


def exclude_file_text(exclusions: tuple[Exclusion, ...]) -> str:
    """The exclude list as Tempest reads it: one regex per line."""
    return "".join(f"{e.regex}\n" for e in exclusions)


def excluded_by(test_id: str, exclusions: tuple[Exclusion, ...]) -> Exclusion | None:
    for e in exclusions:
        if re.search(e.regex, test_id):
            return e
    return None

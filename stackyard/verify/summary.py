"""A Tempest run's subunit stream -> what an operator reads: counts, failures, skips, duration.

Parsed with python-subunit and testtools (the stream Tempest and stestr write),
into plain data that is printed, written as ``summary.json`` and returned.
A class-level error (``setUpClass (tempest.api…)``) counts as a failure: every
test of that class failed to run.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import subunit
import testtools

#: how many lines of an error the summary keeps
ERROR_LINES = 4
_ATTRS = re.compile(r"\[[^\]]*\]$")


@dataclass
class Failure:
    test: str
    error: list[str]


@dataclass
class Skip:
    test: str
    reason: str


@dataclass
class Summary:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    #: the names of the tests that passed (summary.json: which ones, not only how many)
    passed_tests: list[str] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    #: tests excluded by the exclude list (not run), with the list's reason
    excluded: list[Skip] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.passed > 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        return d

    def text(self) -> str:
        lines = [f"tempest: {self.passed} passed, {self.failed} failed, {self.skipped} skipped"
                 f"{f', {len(self.excluded)} excluded' if self.excluded else ''} in {self.seconds:.0f}s"]
        for f in self.failures:
            lines.append(f"FAILED {f.test}")
            lines += [f"    {line}" for line in f.error]
        if self.skips:
            lines.append("skipped:")
            lines += [f"  {s.test}: {s.reason}" for s in self.skips]
        if self.excluded:
            lines.append("excluded (exclude list):")
            lines += [f"  {s.test}: {s.reason}" for s in self.excluded]
        return "\n".join(lines)


def test_name(test_id: str) -> str:
    """A test id without its ``[id-…,smoke]`` attributes."""
    return _ATTRS.sub("", test_id)


def first_error_lines(traceback: str, limit: int = ERROR_LINES) -> list[str]:
    """The exception a traceback ends with (its ``Type: message`` line and what follows)."""
    lines = [ln.rstrip() for ln in traceback.strip().splitlines() if ln.strip()]
    if not lines:
        return ["(no error text)"]
    start = 0
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            start = i
    tail = lines[start:]
    for i in range(len(tail) - 1, -1, -1):
        if not tail[i].startswith((" ", "\t", "Traceback")):
            # back up to the first line of a message that spans several lines
            j = i
            while j > 0 and not tail[j - 1].startswith((" ", "\t", "Traceback")):
                j -= 1
            return tail[j:j + limit]
    return lines[-limit:]


def _text(details: dict[str, Any], *names: str) -> str:
    for name in names:
        content = details.get(name)
        if content is not None:
            try:
                return content.as_text()
            except Exception:  # noqa: BLE001 - binary attachment: not an error text
                continue
    return ""


def summarize(stream: BinaryIO) -> Summary:
    """Read a subunit v2 stream to the end."""
    out = Summary()
    starts: list[datetime] = []
    stops: list[datetime] = []

    def one(test: dict[str, Any]) -> None:
        status = test["status"]
        stamps = [t for t in test.get("timestamps", []) if t is not None]
        if stamps:
            starts.append(min(stamps))
            stops.append(max(stamps))
        name = test_name(test["id"])
        details = test.get("details", {})
        if status in ("success", "xfail"):
            out.passed += 1
            out.passed_tests.append(name)
        elif status == "skip":
            out.skipped += 1
            out.skips.append(Skip(name, _text(details, "reason") or "(no reason given)"))
        elif status in ("fail", "uxsuccess"):
            out.failed += 1
            error = _text(details, "traceback", "reason")
            out.failures.append(Failure(name, first_error_lines(error) if error else ["unexpected success"]))

    case = subunit.ByteStreamToStreamResult(stream, non_subunit_name="stdout")
    result = testtools.StreamToDict(one)
    result.startTestRun()
    try:
        case.run(result)
    finally:
        result.stopTestRun()
    if starts:
        out.seconds = round((max(stops) - min(starts)).total_seconds(), 1)
    out.failures.sort(key=lambda f: f.test)
    out.passed_tests.sort()
    out.skips.sort(key=lambda s: s.test)
    return out


def summarize_file(path: Path) -> Summary:
    with open(path, "rb") as f:
        return summarize(f)

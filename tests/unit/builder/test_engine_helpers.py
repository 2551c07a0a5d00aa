"""Engine helpers that need no engine: retry classification and the summary."""

from __future__ import annotations

import pytest

from stackyard.imagebuild.engine import ImageResult, _short, is_transient, summary


@pytest.mark.parametrize(
    "text",
    [
        "Temporary failure resolving 'deb.debian.org'",
        "Err:1 http://deb.debian.org/debian trixie InRelease\n  Could not resolve 'deb.debian.org'",
        "E: Failed to fetch http://deb.debian.org/debian/pool/main/p/x.deb  Connection timed out",
        "E: Failed to fetch http://deb.debian.org/debian/pool/x.deb  503  Service Unavailable",
        "Could not connect to deb.debian.org:80 (1.2.3.4). - connect (111: Connection refused)",
        "Network is unreachable",
        "E: Failed to fetch ... Hash Sum mismatch",
        "Connection reset by peer",
        "net/http: TLS handshake timeout",
        "read tcp 127.0.0.1:1->127.0.0.1:2: i/o timeout",
        "unexpected EOF",
    ],
)
def test_transient(text):
    assert is_transient(text)


@pytest.mark.parametrize(
    "text",
    [
        "E: Unable to locate package python3-nonexistent",
        "E: Package 'foo' has no installation candidate",
        "E: Failed to fetch http://deb.debian.org/debian/pool/main/x.deb  404  Not Found",
        # a 404 wins even when a transient-looking line is also there
        "Temporary failure resolving 'x'\nE: Failed to fetch http://m/x.deb 404  Not Found",
        "The command '/bin/sh -c false' returned a non-zero code: 1",
        "COPY failed: file not found in build context",
        "dockerfile parse error line 3: unknown instruction: RUNN",
        "",
    ],
)
def test_not_transient(text):
    assert not is_transient(text)


def test_short_prefers_apt_error():
    msg = _short("The command '/bin/sh -c apt-get install x' returned a non-zero code: 100",
                 ["Reading package lists...", "E: Unable to locate package x"])
    assert msg == ("The command '/bin/sh -c apt-get install x' returned a non-zero code: 100: "
                   "E: Unable to locate package x")
    assert _short("", []) == "build failed"


def test_short_strips_engine_colour_codes():
    lines = ["Reading state information...", "\x1b[91mE: Unable to locate package nope", "\x1b[0m"]
    assert _short("returned a non-zero code: 100", lines) == (
        "returned a non-zero code: 100: E: Unable to locate package nope")


def test_summary_lists_every_image():
    results = {
        "base": ImageResult("base", "cached"),
        "broken": ImageResult("broken", "failed", reason="boom"),
        "child": ImageResult("child", "parent_failed", reason="parent 'broken' failed"),
    }
    out = summary(results, ["base", "broken", "child", "other"], {"base", "broken", "child"})
    assert out["cached"] == ["base"] and out["failed"] == ["broken"]
    assert out["parent_failed"] == ["child"] and out["unmatched"] == ["other"]
    assert out["failed_reasons"] == {"broken": "boom", "child": "parent 'broken' failed"}
    assert set(out["images"]) == {"base", "broken", "child"}

"""The summary of a real subunit v2 stream, written here with python-subunit as stestr writes it."""

import io
from datetime import datetime, timedelta, timezone

import subunit

from stackyard.verify.summary import first_error_lines, summarize

T0 = datetime(2026, 12, 6, 12, 0, 0, tzinfo=timezone.utc)

TRACEBACK = """Traceback (most recent call last):
  File "/v/tempest/scenario/test_x.py", line 3, in test_x
    self.check()
tempest.lib.exceptions.SSHExecCommandFailed: Command 'curl http://169.254.169.254/', exit status: 127
sh: curl: not found
stdout:
"""


def stream() -> io.BytesIO:
    out = io.BytesIO()
    w = subunit.StreamResultToBytes(out)

    def test(tid: str, status: str, start: int, seconds: int, **files: str) -> None:
        w.status(test_id=tid, test_status="inprogress", timestamp=T0 + timedelta(seconds=start))
        for name, text in files.items():
            w.status(test_id=tid, file_name=name, file_bytes=text.encode(), mime_type="text/plain;charset=utf8",
                     eof=True)
        w.status(test_id=tid, test_status=status, timestamp=T0 + timedelta(seconds=start + seconds))

    test("tempest.api.compute.test_a.T.test_one[id-1,smoke]", "success", 0, 2)
    test("tempest.api.compute.test_a.T.test_two[id-2,smoke]", "success", 1, 3)
    test("tempest.scenario.test_x.S.test_x[compute,id-3,smoke]", "fail", 2, 40, traceback=TRACEBACK)
    test("setUpClass (tempest.api.volume.test_v.VolumesTest)", "skip", 3, 0, reason="Cinder is not available")
    test("tempest.api.image.test_i.I.test_xfail[id-5]", "xfail", 5, 1)
    out.seek(0)
    return out


def test_counts_failures_skips_and_duration() -> None:
    s = summarize(stream())
    assert (s.passed, s.failed, s.skipped) == (3, 1, 1)
    assert s.seconds == 42.0 and not s.ok
    assert s.passed_tests == ["tempest.api.compute.test_a.T.test_one", "tempest.api.compute.test_a.T.test_two",
                              "tempest.api.image.test_i.I.test_xfail"]
    assert s.failures[0].test == "tempest.scenario.test_x.S.test_x"  # without its [attributes]
    assert s.failures[0].error[0].startswith("tempest.lib.exceptions.SSHExecCommandFailed: Command 'curl")
    assert s.failures[0].error[1] == "sh: curl: not found"
    assert s.skips[0].test == "setUpClass (tempest.api.volume.test_v.VolumesTest)"
    assert s.skips[0].reason == "Cinder is not available"
    text = s.text()
    assert text.splitlines()[0] == "tempest: 3 passed, 1 failed, 1 skipped in 42s"
    assert "FAILED tempest.scenario.test_x.S.test_x" in text and "Cinder is not available" in text


def test_an_empty_run_is_not_ok() -> None:
    s = summarize(io.BytesIO(b""))
    assert (s.passed, s.failed) == (0, 0) and not s.ok


def test_first_error_lines_of_chained_tracebacks() -> None:
    chained = TRACEBACK + "\nDuring handling of the above exception, another exception occurred:\n\n" \
        "Traceback (most recent call last):\n  File \"x\", line 1\nValueError: second\n"
    assert first_error_lines(chained) == ["ValueError: second"]
    assert first_error_lines("") == ["(no error text)"]

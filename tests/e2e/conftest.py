"""Helpers shared by the end-to-end tests (fixtures: tests import nothing from
each other under --import-mode=importlib)."""

from __future__ import annotations

import time
from typing import Any, Callable

import pytest


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 3.0) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned), or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    """:func:`wait_until`, for tests that poll a cloud (a guest's console, a ping)."""
    return wait_until

"""OpenStack release names (``2025.1``, ``2026.1`` …) as comparable numbers.

Shared by the image builder (which release's series to install) and the
deployer (what a release changed in how a service runs); both sit above this
module, which imports nothing.
"""

from __future__ import annotations

import re

RELEASE_RE = re.compile(r"(\d{4})\.([12])")


class ReleaseNameError(ValueError):
    """Not a release name of the form YYYY.1 or YYYY.2."""


def release_index(release: str) -> int:
    """A number that grows by one per release: 2025.1 < 2025.2 < 2026.1."""
    m = RELEASE_RE.fullmatch(release)
    if not m:
        raise ReleaseNameError(f"'{release}' is not a release name like 2026.1")
    return int(m.group(1)) * 2 + int(m.group(2)) - 1


def at_least(release: str, other: str) -> bool:
    """``release`` is ``other`` or newer."""
    return release_index(release) >= release_index(other)

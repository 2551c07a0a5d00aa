"""Errors of the guest-image builder (one tree, rooted in StackyardError)."""

from __future__ import annotations

from stackyard.errors import StackyardError


class GuestImageError(StackyardError):
    """Building the guest image failed for a reason the operator can fix."""


class GuestPackageError(GuestImageError, LookupError):
    """A Debian package the guest needs cannot be found or downloaded."""


class GuestToolError(GuestImageError):
    """A host tool the builder runs (apt-get, dpkg-deb) is missing or failed."""


class GuestUploadError(GuestImageError):
    """Glance refused an upload or the cloud cannot be reached."""

"""A tiny bootable guest built from Debian packages, for clouds that cannot download cirros.

``build_guest(work_dir)`` makes a kernel, a busybox initramfs and a placeholder
machine disk; ``upload_guest(conn, artifacts, name)`` puts them in Glance as an
AKI/ARI/AMI triple and returns the bootable image's ID.
"""

from __future__ import annotations

from stackyard.guest.build import GuestArtifacts, build_guest
from stackyard.guest.plan import GuestSpec
from stackyard.guest.upload import connect, upload_guest

__all__ = ["GuestArtifacts", "GuestSpec", "build_guest", "connect", "upload_guest"]

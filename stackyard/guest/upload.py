"""Upload the guest to Glance as AKI (kernel) + ARI (ramdisk) + AMI (machine) images, idempotently.

An image with the same name and checksum is reused, never uploaded twice; a reused
machine image whose kernel/ramdisk properties point elsewhere is updated in place.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from stackyard.guest.build import GuestArtifacts
from stackyard.guest.errors import GuestUploadError


@dataclass(frozen=True)
class ImageSpec:
    name: str
    path: Path
    disk_format: str
    container_format: str
    properties: dict[str, str]


def md5_file(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _prop(image: Any, key: str) -> Any:
    value = getattr(image, key, None)
    if value is None:
        props = getattr(image, "properties", None) or {}
        value = props.get(key)
    return value


def ensure_image(conn: Any, spec: ImageSpec, log: Callable[[str], None] = lambda m: None) -> str:
    """The ID of an active public image named ``spec.name`` with the file's checksum; upload if none."""
    checksum = md5_file(spec.path)
    for image in conn.image.images(name=spec.name):
        if (image.name == spec.name and image.checksum == checksum and image.status == "active"
                and image.disk_format == spec.disk_format):
            changes = {k: v for k, v in spec.properties.items() if _prop(image, k) != v}
            if image.visibility != "public":
                changes["visibility"] = "public"
            if changes:
                conn.image.update_image(image, **changes)
                log(f"image {spec.name} {image.id}: updated {', '.join(sorted(changes))}")
            else:
                log(f"image {spec.name} {image.id}: up to date")
            return image.id
    image = conn.image.create_image(
        spec.name, filename=str(spec.path), disk_format=spec.disk_format,
        container_format=spec.container_format, visibility="public", allow_duplicates=True,
        validate_checksum=True, wait=True, **spec.properties)
    log(f"image {spec.name} {image.id}: uploaded ({spec.path.stat().st_size} bytes)")
    return image.id


def upload_guest(conn: Any, artifacts: GuestArtifacts, name: str = "stackyard-guest",
                 log: Callable[[str], None] = lambda m: None) -> str:
    """Upload kernel, ramdisk and machine image; return the ID of the bootable (AMI) image."""
    try:
        kernel_id = ensure_image(conn, ImageSpec(f"{name}-kernel", artifacts.kernel, "aki", "aki", {}), log)
        ramdisk_id = ensure_image(conn, ImageSpec(f"{name}-ramdisk", artifacts.ramdisk, "ari", "ari", {}), log)
        props = {"kernel_id": kernel_id, "ramdisk_id": ramdisk_id, "os_command_line": artifacts.cmdline,
                 "hw_vif_model": "virtio"}
        return ensure_image(conn, ImageSpec(name, artifacts.disk, "ami", "ami", props), log)
    except Exception as exc:
        if exc.__class__.__module__.startswith("openstack") or isinstance(exc, OSError):
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].strip("'\" ")
            raise GuestUploadError(f"glance upload of {name} failed: {first}") from None
        raise


def connect(cloud: str | None, config_file: str | None) -> Any:
    """An authenticated openstacksdk connection to ``cloud`` (default stackyard-admin)
    of ``config_file`` (a clouds.yaml; default: openstacksdk's own lookup)."""
    import openstack
    import openstack.exceptions

    if config_file:
        if not Path(config_file).is_file():
            raise GuestUploadError(f"clouds.yaml not found: {config_file}")
        os.environ["OS_CLIENT_CONFIG_FILE"] = config_file
    name = cloud or "stackyard-admin"
    try:
        conn = openstack.connect(cloud=name)
        conn.authorize()
        return conn
    except openstack.exceptions.ConfigException as exc:
        where = os.environ.get("OS_CLIENT_CONFIG_FILE", "clouds.yaml")
        raise GuestUploadError(f"cloud {name} not found in {where}: {exc}") from None
    except openstack.exceptions.SDKException as exc:
        raise GuestUploadError(f"cannot authenticate to cloud {name}: {str(exc).splitlines()[0]}") from None

"""``stackyard guest-image``: build the guest, optionally upload it to Glance."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from stackyard.guest.build import DEFAULT_WORK_DIR, build_guest
from stackyard.guest.errors import GuestImageError
from stackyard.guest.plan import DEFAULT_CMDLINE, GuestSpec
from stackyard.guest.upload import connect, upload_guest


def register(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "guest-image", help="build a tiny bootable guest from Debian packages (and upload it to Glance)",
        description="Build a kernel + busybox initramfs guest (DHCP, metadata, console banner, ping, "
                    "dropbear) from Debian packages; with --upload, put it in Glance as AKI/ARI/AMI images.")
    p.add_argument("--work-dir", default=str(DEFAULT_WORK_DIR), help=f"build and cache directory ({DEFAULT_WORK_DIR})")
    p.add_argument("--name", default="stackyard-guest", help="Glance image name (kernel/ramdisk get -kernel/-ramdisk)")
    p.add_argument("--kernel-package", default=GuestSpec.kernel_package,
                   help="Debian kernel package (linux-image-cloud-amd64, or linux-image-amd64)")
    p.add_argument("--no-ssh", action="store_true", help="leave dropbear out of the initramfs")
    p.add_argument("--cmdline", default=DEFAULT_CMDLINE, help="kernel command line stored as os_command_line")
    p.add_argument("--force", action="store_true", help="rebuild even if the same build is cached")
    p.add_argument("--upload", action="store_true", help="upload to Glance (idempotent) and print the image ID")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--cloud", default=None, help="cloud name in clouds.yaml (default stackyard-admin)")
    src.add_argument("--os-cloud-config", dest="os_cloud_config", default=None,
                     help="path to a clouds.yaml (cloud stackyard-admin), instead of OS_CLIENT_CONFIG_FILE")
    p.add_argument("--configdir", default=None,
                   help="deployer config dir: use its clouds.yaml (written by post-deploy)")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    spec = GuestSpec(kernel_package=args.kernel_package, ssh=not args.no_ssh, cmdline=args.cmdline)
    if not args.name or "/" in args.name:
        raise GuestImageError(f"--name {args.name!r}: give a plain image name")
    config_file = args.os_cloud_config
    if config_file is None and args.configdir:
        config_file = str(Path(args.configdir) / "clouds.yaml")
    conn = connect(args.cloud, config_file) if args.upload else None  # fail early, before building
    art = build_guest(Path(args.work_dir), spec, force=args.force)
    log = (lambda m: print(m, file=sys.stderr))
    log(f"guest {'reused' if art.reused else 'built'}: kernel {art.kernel_version}, "
        f"{len(art.modules)} modules, initramfs {art.ramdisk.stat().st_size // 1024} KiB in {art.ramdisk.parent}")
    image_id = upload_guest(conn, art, args.name, log=log) if conn is not None else None
    if args.format == "json":
        print(json.dumps({**art.to_json(), "image_id": image_id}, indent=2))
    elif image_id:
        print(image_id)
    else:
        print(f"kernel  {art.kernel}\nramdisk {art.ramdisk}\ndisk    {art.disk}\ncmdline {art.cmdline}")
    return 0

"""``stackyard build`` and ``stackyard base-image``.

The image builder knows nothing of services; this layer hands it what the
service definitions declare: the build profiles (infra, core) and the fixed
service users the images create.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from stackyard import engine as engine_mod
from stackyard.deploy import services
from stackyard.imagebuild import run
from stackyard.imagebuild.baseimage import ensure_base_image
from stackyard.imagebuild.config import DEFAULT_CONFIG_FILE, BuildConfig, load_config_file, make_config
from stackyard.imagebuild.engine import Progress


def builtin_defaults() -> dict[str, Any]:
    """What the service definitions give the builder: profiles and users."""
    users = {u.name: {"uid": u.uid, "gid": u.gid, "home": u.home, "groups": list(u.groups)}
             for u in services.users().values()}
    return {"profiles": services.build_profiles(), "users": users}


def build_config(config_path: str | None, flags: dict[str, Any]) -> BuildConfig:
    """Built-in defaults < the build config file (default /etc/stackyard/build.yml) < flags."""
    path = Path(config_path) if config_path else DEFAULT_CONFIG_FILE
    file_values = load_config_file(path, required=config_path is not None)
    return make_config(file_values, flags, builtin_defaults())


def build_images(config: BuildConfig, images: list[str], profiles: list[str] | None = None,
                 engine: engine_mod.Engine | None = None) -> dict[str, Any]:
    """Build (or find cached) ``images``; returns the build summary."""
    session = run.prepare(config, images, profiles or [])
    return run.execute(session, engine or engine_mod.connect(), Progress(enabled=True))


def _add_build_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="*", help="image names (exact), profile names, or regexes with --regex")
    p.add_argument("--config", default=None, help="build config file (default /etc/stackyard/build.yml)")
    p.add_argument("--profile", action="append", default=[], help="named set of images (infra, core, all)")
    p.add_argument("--regex", action="store_true", default=None, help="treat image arguments as regexes")
    p.add_argument("--base-image", dest="base_image")
    p.add_argument("--base-tag", dest="base_tag", help="Debian suite: trixie (2025.1) or bookworm (zed)")
    p.add_argument("--install-type", dest="install_type", choices=["binary", "source"])
    p.add_argument("--registry")
    p.add_argument("--namespace")
    p.add_argument("--tag")
    p.add_argument("--openstack-release", dest="openstack_release")
    p.add_argument("--threads", type=int)
    p.add_argument("--retries", type=int)
    p.add_argument("--docker-dir", dest="docker_dirs", action="append", default=[])
    p.add_argument("--template-override", dest="template_overrides", action="append", default=[])
    p.add_argument("--apt-mirror", dest="apt_mirror")
    p.add_argument("--apt-security-mirror", dest="apt_security_mirror")
    p.add_argument("--apt-proxy", dest="apt_proxy")
    p.add_argument("--push", action="store_true", default=None)
    p.add_argument("--skip-parents", dest="skip_parents", action="store_true", default=None)
    p.add_argument("--skip-existing", dest="skip_existing", action="store_true", default=None)
    p.add_argument("--no-cache", dest="no_cache", action="store_true", default=None,
                   help="rebuild every selected image (ignore the hash cache and Docker's layer cache)")
    p.add_argument("--work-dir", dest="work_dir")
    p.add_argument("--logs-dir", dest="logs_dir")
    p.add_argument("--summary-file", dest="summary_file")
    p.add_argument("--format", choices=["text", "json"])
    p.add_argument("--list-images", action="store_true", help="print the selected images and exit")
    p.add_argument("--list-dependencies", nargs="?", const="tree", choices=["tree", "json", "dot"],
                   help="print the dependency tree (tree, json or graphviz dot) and exit")
    p.add_argument("--template-only", action="store_true", help="write rendered Dockerfiles and exit")


_BUILD_KEYS = (
    "base_image", "base_tag", "install_type", "registry", "namespace", "tag", "openstack_release",
    "threads", "retries", "docker_dirs", "template_overrides", "apt_mirror", "apt_security_mirror",
    "apt_proxy", "push", "skip_parents", "skip_existing", "no_cache", "regex", "work_dir", "logs_dir",
    "summary_file", "format",
)


def build_config_from_args(args: argparse.Namespace) -> BuildConfig:
    return build_config(args.config, {k: getattr(args, k, None) for k in _BUILD_KEYS})


def cmd_build(args: argparse.Namespace) -> int:
    config = build_config_from_args(args)
    session = run.prepare(config, args.images, args.profile)
    if args.list_images:
        for name in session.graph.order():
            if name in session.selected:
                print(name)
        return 0
    if args.list_dependencies:
        print(run.list_dependencies(session, args.list_dependencies))
        return 0
    if args.template_only:
        out = Path(config.work_dir) / "docker"
        written = run.write_templates(session, out)
        print(f"wrote {len(written)} Dockerfiles under {out}")
        return 0
    result = run.execute(session, engine_mod.connect(), Progress(enabled=True))
    text = json.dumps(result, indent=2, sort_keys=True)
    if config.summary_file:
        Path(config.summary_file).parent.mkdir(parents=True, exist_ok=True)
        Path(config.summary_file).write_text(text + "\n")
    if config.format == "json":
        print(text)
    else:
        print_summary(result)
    return 1 if result["failed"] or result["parent_failed"] else 0


def print_summary(result: dict[str, Any]) -> None:
    console = Console(highlight=False)
    counts = ", ".join(f"{len(result[k])} {k.replace('_', ' ')}" for k in
                       ("built", "cached", "failed", "parent_failed", "skipped", "unmatched"))
    console.print(f"images: {counts}")
    for name, reason in result["failed_reasons"].items():
        console.print(f"[red]  {name}: {reason}[/red]")


def cmd_base_image(args: argparse.Namespace) -> int:
    config = build_config_from_args(args)
    image_id = ensure_base_image(engine_mod.connect(), config, log=lambda m: print(m, file=sys.stderr),
                                 force=args.force)
    print(f"{config.base_ref} {image_id}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("build", help="build images from the Dockerfile.j2 tree")
    _add_build_flags(p)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("base-image", help="make the Debian base image (debootstrap) if it is missing")
    _add_build_flags(p)
    p.add_argument("--force", action="store_true", help="re-make it even if present")
    p.set_defaults(func=cmd_base_image)

"""``stackyard ceph-aio up|down|status``: the one-node test Ceph cluster (see :mod:`stackyard.cephaio`).

``up`` builds the Ceph images when the engine lacks them (cached builds take
seconds), then makes or converges the cluster and prints the globals.yml
lines that turn the services' Ceph backends on.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from stackyard import cephaio
from stackyard.commands.build import build_config, build_images
from stackyard.commands.common import DEFAULT_CONFIGDIR, console, extra_vars
from stackyard.engine import connect
from stackyard.errors import StackyardError


def _settings_flags(args: argparse.Namespace) -> dict[str, Any]:
    flags: dict[str, Any] = {"mon_port": args.mon_port, "mon_v1_port": args.mon_v1_port}
    if args.osd_size is not None:
        flags["osd_block_size"] = int(args.osd_size * (1 << 30))
    return flags


def cmd_up(args: argparse.Namespace) -> int:
    say = console().print
    evars = extra_vars(args.extra_vars)
    settings, _opts = cephaio.resolve(args.configdir, args.namespace, args.name_prefix, extra_vars=evars,
                                      **_settings_flags(args))
    engine = connect()
    missing = cephaio.missing_images(engine, settings)
    if missing and args.no_build:
        raise StackyardError(f"image(s) {', '.join(missing)} not found (and --no-build was given)")
    if missing:
        say(f"building the Ceph images ({', '.join(missing)})")
        flags: dict[str, Any] = {"namespace": settings.namespace, "tag": settings.tag,
                                 "registry": settings.registry or None}
        if args.work_dir:
            flags["work_dir"] = args.work_dir
        built = build_images(build_config(None, flags), list(cephaio.IMAGES), engine=engine)
        if built["failed"] or built["parent_failed"]:
            raise StackyardError(f"image build failed: {built['failed_reasons']}")
    result = cephaio.up(args.configdir, args.namespace, args.name_prefix, extra_vars=evars, engine=engine,
                        timeout=args.timeout, say=lambda m: say(f"[dim]{m}[/dim]"), **_settings_flags(args))
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    for line in result.changed:
        say(f"  {line}")
    state = "nothing changed" if result.nothing_changed else f"ready in {result.seconds:.1f} s"
    print(f"ceph-aio: cluster {result.fsid} is up ({result.health}); {state}")
    for name, message in sorted(result.checks.items()):
        print(f"  {name}: {message}")
    print(f"pools: {', '.join(result.options.pools)}; users: "
          + ", ".join(f"client.{u}" for u in result.options.users))
    print(f"client files (kolla-ansible's external Ceph layout) under {result.settings.overrides_dir}/")
    print("\nTo use it, put these lines in globals.yml:\n" + "\n".join(f"  {line}" for line in cephaio.BACKEND_LINES))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    result = cephaio.down(args.configdir, include_volumes=args.include_volumes)
    for line in result.lines():
        print(line)
    if not result.lines():
        print(f"ceph-aio: nothing of {args.configdir}'s cluster to remove")
    elif not args.include_volumes:
        print("data, keys and client files kept (--include-volumes removes them)")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    result = cephaio.status(args.configdir)
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2))
        return 0 if result.up else 1
    if not result.containers and not result.fsid:
        print(f"ceph-aio: no cluster for {result.configdir}")
        return 1
    print(f"ceph-aio cluster {result.fsid or '(no state)'} of {result.configdir}:")
    for name, state in sorted(result.containers.items()):
        print(f"  {name}: {state}")
    if result.health:
        print(f"  health: {result.health}; {result.waiting}")
    elif result.waiting:
        print(f"  {result.waiting}")
    for name, message in sorted(result.checks.items()):
        print(f"    {name}: {message}")
    missing = [p for p, there in result.files.items() if not there]
    if missing:
        print("  missing client files: " + ", ".join(missing))
    return 0 if result.up else 1


def register(sub: Any) -> None:
    p = sub.add_parser("ceph-aio", help="one-node test Ceph cluster for the all-in-one (test and demo only)",
                       description=__doc__)
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--configdir", default=str(DEFAULT_CONFIGDIR),
                       help="the deployment's config dir: globals.yml is read, config/ written (default /etc/kolla)")

    q = actions.add_parser("up", help="make the cluster (or converge it) and write the client files")
    common(q)
    q.add_argument("-e", "--extra-vars", dest="extra_vars", action="append", default=[],
                   help="key=value or @file.yml, overrides globals.yml")
    q.add_argument("--namespace", help="image namespace (default: globals.yml's docker_namespace)")
    q.add_argument("--name-prefix", dest="name_prefix",
                   help="container and volume name prefix (default: globals.yml's stackyard_name_prefix)")
    q.add_argument("--mon-port", dest="mon_port", type=int, default=None, help="monitor's msgr v2 port (3300)")
    q.add_argument("--mon-v1-port", dest="mon_v1_port", type=int, default=None, help="monitor's msgr v1 port (6789)")
    q.add_argument("--osd-size", dest="osd_size", type=float, default=None,
                   help="size of the OSD's sparse BlueStore file in GiB (10)")
    q.add_argument("--timeout", type=float, default=180, help="seconds to wait for the cluster (180)")
    q.add_argument("--work-dir", dest="work_dir", help="image build work dir (when images are missing)")
    q.add_argument("--no-build", dest="no_build", action="store_true", help="fail instead of building missing images")
    q.add_argument("--format", choices=["text", "json"], default="text")
    q.set_defaults(func=cmd_up)

    q = actions.add_parser("down", help="remove the cluster's containers (and with --include-volumes its data)")
    common(q)
    q.add_argument("--include-volumes", dest="include_volumes", action="store_true",
                   help="also remove the data volumes, the keys and the client files ceph-aio wrote")
    q.set_defaults(func=cmd_down)

    q = actions.add_parser("status", help="containers, Ceph health, client files (exit 1 unless ready)")
    common(q)
    q.add_argument("--format", choices=["text", "json"], default="text")
    q.set_defaults(func=cmd_status)

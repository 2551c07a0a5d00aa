"""``stackyard testbed up|down|stop|start|status``.

Needs root (network namespaces, nsenter) and the local container engine.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from stackyard.testbed import bed
from stackyard.testbed.config import (DEFAULT_PREFIX, DEFAULT_REGISTRY_PORT, DEFAULT_STATE_DIR,
                                      DEFAULT_SUBNET, TestbedConfig, parse_node)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def config_from_args(args: argparse.Namespace) -> TestbedConfig:
    return TestbedConfig(state_dir=Path(args.state_dir), prefix=args.prefix, subnet=args.subnet,
                         registry_port=args.registry_port)


def cmd_up(args: argparse.Namespace) -> int:
    result = bed.up(config_from_args(args), args.hosts, _log, rebuild=args.rebuild_image)
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    bed.down(config_from_args(args), _log, purge=args.purge)
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    bed.stop_node(config_from_args(args), parse_node(args.node), _log)
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    bed.start_node(config_from_args(args), parse_node(args.node), _log)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    print(json.dumps(bed.status(config_from_args(args)), indent=2, sort_keys=True))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR),
                   help=f"keys, inventory, registry data and pid files (default {DEFAULT_STATE_DIR})")
    p.add_argument("--prefix", default=DEFAULT_PREFIX,
                   help=f"names the netns, bridge, veths and containers (default {DEFAULT_PREFIX})")
    p.add_argument("--subnet", default=DEFAULT_SUBNET, help=f"node subnet (default {DEFAULT_SUBNET})")
    p.add_argument("--registry-port", type=int, default=DEFAULT_REGISTRY_PORT,
                   help=f"registry port on 127.0.0.1 (default {DEFAULT_REGISTRY_PORT})")


def register(sub: Any) -> None:
    p = sub.add_parser("testbed", help="multi-node test bed: Debian node containers on a private bridge")
    tsub = p.add_subparsers(dest="testbed_command", required=True, metavar="ACTION")

    q = tsub.add_parser("up", help="create or converge the test bed (idempotent)")
    _common(q)
    q.add_argument("--hosts", type=int, default=3, help="number of nodes (default 3)")
    q.add_argument("--rebuild-image", action="store_true", help="rebuild the node image (without Docker's layer cache) even if current")
    q.set_defaults(func=cmd_up)

    q = tsub.add_parser("down", help="remove nodes, volumes, namespace, registry and forwarder")
    _common(q)
    q.add_argument("--purge", action="store_true", help="also delete the registry's storage")
    q.set_defaults(func=cmd_down)

    for name, func, helptext in (("stop", cmd_stop, "power a node off (docker stop)"),
                                 ("start", cmd_start, "power a node on and re-plumb its network")):
        q = tsub.add_parser(name, help=helptext)
        _common(q)
        q.add_argument("node", help="nodeN")
        q.set_defaults(func=func)

    q = tsub.add_parser("status", help="print the test bed state as JSON")
    _common(q)
    q.set_defaults(func=cmd_status)

"""The single ``stackyard`` entry point: assembles the commands' parsers and runs one.

Operator mistakes surface as :class:`~stackyard.errors.StackyardError` and are
printed as one line with exit code 2 (1 for "ran, but something failed").
Nothing imports this module; the commands live in :mod:`stackyard.commands`.
"""

from __future__ import annotations

import argparse
import sys

from stackyard import __version__
from stackyard.commands import build, cephaio, deploy, guest, lifecycle, servers, testbed, up, verify
from stackyard.commands.common import absolute_configdir
from stackyard.errors import StackyardError


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stackyard", description=__doc__)
    parser.add_argument("--version", action="version", version=f"stackyard {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (build, deploy, lifecycle, up, cephaio, verify, servers, guest, testbed):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = absolute_configdir(parser.parse_args(argv))
    try:
        return int(args.func(args) or 0)
    except StackyardError as exc:
        print(f"stackyard: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stackyard: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

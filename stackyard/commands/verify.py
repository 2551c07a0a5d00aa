"""``stackyard verify [smoke|full|REGEX]``: Tempest against the deployed cloud, configured from it.

The day-1 resources and the guest image are made first (both idempotent),
then tempest.conf is generated from the deployment and the cloud's own
answers, Tempest runs in its pinned virtualenv, and the summary is printed
and kept in the run directory. Exit 0 only when tests ran and none failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from stackyard.commands.common import add_deploy_options, console, load_deployment
from stackyard.deploy import day1
from stackyard.deploy.clientfiles import admin_connection
from stackyard.errors import ConfigError
from stackyard.guest import build_guest, upload_guest
from stackyard.verify import facts as facts_mod
from stackyard.verify import runner, selection, summary as summary_mod, tempestconf
from stackyard.verify.summary import Skip


def cmd_verify(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        raise ConfigError(f"--concurrency {args.concurrency}: at least 1")
    sel = selection.select(args.pattern, Path(args.exclude_list) if args.exclude_list else None)
    runner.check_host_programs()
    dep = load_deployment(args)
    say = console().print
    conn = admin_connection(dep)
    quiet = (lambda m: None) if args.format == "json" else say
    day1.apply_day1(conn, day1.plan_day1(dep.variables, dep.enabled, dep.configdir), quiet)
    guest = build_guest(Path(args.guest_work_dir))
    upload_guest(conn, guest, args.image, log=lambda m: None)
    work = Path(args.work_dir)
    run_dir = runner.new_run_dir(work)
    facts = facts_mod.gather(dep, conn, image_name=args.image, image_file=str(guest.disk), run_dir=str(run_dir))
    runner.write_private(run_dir / "tempest.conf", tempestconf.render(facts))
    bin_dir = runner.ensure_venv(work, say)
    if args.list:
        code, _ = runner.run(bin_dir, run_dir, sel, args.concurrency, lambda line: print(line), list_only=True)
        return 0 if code == 0 else 1
    # Tempest's own progress lines on stderr: stdout stays for the summary (JSON with --format json)
    code, seconds = runner.run(bin_dir, run_dir, sel, args.concurrency,
                               lambda line: print(line, file=sys.stderr, flush=True))
    result = summary_mod.summarize_file(runner.collect_subunit(bin_dir, run_dir))
    result.seconds = round(seconds, 1)
    result.excluded = [Skip(e.regex, e.reason) for e in sel.exclusions]
    doc: dict[str, Any] = {"run_dir": str(run_dir), "selection": sel.name, "tempest": tempestconf.TEMPEST_VERSION,
                           "concurrency": args.concurrency, "tempest_exit_code": code, **result.to_dict()}
    (run_dir / "summary.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    (run_dir / "summary.txt").write_text(result.text() + "\n")
    if args.format == "json":
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        print(result.text())
        print(f"run directory: {run_dir}")
    return 0 if result.ok and code == 0 else 1


def register(sub: Any) -> None:
    p = sub.add_parser("verify", help="run Tempest against the deployed cloud (smoke, full or a regex)")
    add_deploy_options(p)
    p.add_argument("pattern", nargs="*", default=["smoke"],
                   help="smoke (default), full (API and scenario tests not tagged slow) or a regex of test ids; "
                        "several run as one Tempest run of their union")
    p.add_argument("--concurrency", type=int, default=2, help="Tempest workers (default 2)")
    p.add_argument("--list", action="store_true", help="list the tests that would run; run nothing")
    p.add_argument("--exclude-list", help="file of 'REGEX  # reason' lines: tests skipped knowingly")
    p.add_argument("--work-dir", default=str(runner.DEFAULT_WORK_DIR),
                   help=f"Tempest's virtualenv and the run directories (default {runner.DEFAULT_WORK_DIR})")
    p.add_argument("--guest-work-dir", default="/var/lib/stackyard/guest", help="guest image build dir")
    p.add_argument("--image", default="stackyard-guest", help="the Glance image servers boot (stackyard's guest)")
    p.set_defaults(func=cmd_verify)

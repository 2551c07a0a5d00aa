"""Deployer commands: genpwd, mergepwd, genconfig, deploy, reconfigure, post-deploy,
prechecks, check, stop, destroy and up.

One host (the all-in-one) is driven directly through the local engine's API.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from stackyard.errors import ConfigError, DeployError, StackyardError

DEFAULT_CONFIGDIR = Path("/etc/kolla")


# ----------------------------------------------------------------------------- helpers
def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def _extra_vars(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if item.startswith("@"):
            path = Path(item[1:])
            try:
                data = yaml.safe_load(path.read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise ConfigError(f"{path}: cannot read extra vars: {exc}") from None
            if not isinstance(data, dict):
                raise ConfigError(f"{path}: extra vars must be a mapping")
            out.update(data)
        elif "=" in item:
            key, _, value = item.partition("=")
            out[key.strip()] = yaml.safe_load(value) if value else ""
        else:
            raise ConfigError(f"-e '{item}': expected key=value or @file.yml")
    return out


def _load(args: argparse.Namespace) -> Any:
    from stackyard.deploy import plan as plan_mod

    inv = [Path(p) for p in args.inventory] if args.inventory else None
    dep = plan_mod.load(Path(args.configdir), inv, _extra_vars(args.extra_vars))
    if dep.remote_hosts:
        from stackyard.deploy import multihost

        multihost.resolve_addresses(dep, inv or [])
    plan_mod.make_plans(dep)
    say = _console().print
    for w in dep.warnings:
        say(f"[yellow]warning:[/yellow] {w}")
    return dep


def _inventories(args: argparse.Namespace) -> list[Path]:
    return [Path(p) for p in args.inventory]


def _client() -> Any:
    from stackyard.cli import _engine_client

    return _engine_client()


def _selected_phases(args: argparse.Namespace) -> set[str] | None:
    tags = getattr(args, "tags", None)
    if not tags:
        return None
    return {t.strip() for item in tags for t in item.split(",") if t.strip()}


def _apply_multihost(args: argparse.Namespace, dep: Any, dry_run: bool) -> int:
    from stackyard.deploy import multihost

    console = _console()
    start = time.monotonic()
    summary = multihost.run(dep, _inventories(args), only_phases=_selected_phases(args),
                            limit=getattr(args, "limit", None), check=dry_run)
    summary["seconds"] = round(time.monotonic() - start, 2)
    summary["dry_run"] = dry_run
    if args.format == "json":
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        for host, h in sorted(summary["hosts"].items()):
            for change in h["changes"]:
                console.print(f"{host}: {change}")
        verb = "would change" if dry_run else "changed"
        tasks = ", ".join(f"{h} {v['tasks']}" for h, v in sorted(summary["hosts"].items()))
        console.print(f"summary: {summary['changed']} {verb}, {summary['failed']} failed on "
                      f"{len(summary['hosts'])} hosts in {summary['seconds']:.1f}s "
                      f"({summary['waves']} waves; tasks per host: {tasks})")
    if summary["error"]:
        raise DeployError(summary["error"])
    return 0


def _apply(args: argparse.Namespace, dry_run: bool) -> int:
    from stackyard.deploy.apply import HostApplier

    dep = _load(args)
    if dep.remote_hosts:
        return _apply_multihost(args, dep, dry_run or getattr(args, "check", False))
    client = _client()
    console = _console()
    reports = {}
    start = time.monotonic()
    failed_msg = ""
    for host, plan in dep.plans.items():
        applier = HostApplier(client, plan, dep.passwords, dep.variables, console.print, dry_run=dry_run)
        try:
            reports[host] = applier.run(_selected_phases(args))
        except DeployError as exc:
            reports[host] = applier.report
            failed_msg = str(exc)
            break
    total = time.monotonic() - start
    summary = {
        "dry_run": dry_run,
        "seconds": round(total, 2),
        "hosts": {h: r.to_dict() for h, r in reports.items()},
        "changed": sum(r.changed for r in reports.values()),
        "failed": sum(r.failed for r in reports.values()),
        "error": failed_msg,
    }
    if args.format == "json":
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        unchanged = sum(r.to_dict()["unchanged"] for r in reports.values())
        verb = "would change" if dry_run else "changed"
        console.print(f"summary: {summary['changed']} {verb}, {unchanged} unchanged, "
                      f"{summary['failed']} failed in {total:.1f}s")
    if failed_msg:
        raise DeployError(failed_msg)
    return 0


# ----------------------------------------------------------------------------- commands
def cmd_genpwd(args: argparse.Namespace) -> int:
    from stackyard.deploy.passwords import genpwd

    path = Path(args.passwords) if args.passwords else Path(args.configdir) / "passwords.yml"
    made = genpwd(path)
    print(f"{path}: generated {len(made)} password(s), kept existing values")
    return 0


def cmd_mergepwd(args: argparse.Namespace) -> int:
    from stackyard.deploy.passwords import mergepwd

    mergepwd(Path(args.old), Path(args.new), Path(args.final), clean=args.clean)
    print(f"merged {args.old} into {args.final}")
    return 0


def cmd_genconfig(args: argparse.Namespace) -> int:
    from stackyard.deploy.hostapply import sync_files

    dep = _load(args)
    for host, plan in dep.plans.items():
        changed = sync_files(plan)
        print(f"{host}: {len(plan.files)} config files, {len(changed)} changed")
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    return _apply(args, dry_run=args.dry_run)


def cmd_plan(args: argparse.Namespace) -> int:
    dep = _load(args)
    print(json.dumps({h: p.to_dict() for h, p in dep.plans.items()}, indent=2, sort_keys=True))
    return 0


def _keystone_url(v: dict[str, Any]) -> str:
    return f"http://{v['kolla_internal_fqdn']}:{v['keystone_public_port']}/v3"


def write_client_files(dep: Any) -> tuple[Path, Path]:
    """admin-openrc.sh and clouds.yaml beside globals.yml, mode 0600 (they hold the admin password)."""
    v, pw = dep.variables, dep.passwords
    openrc = dep.configdir / "admin-openrc.sh"
    lines = [
        "# Generated by stackyard post-deploy: source it to use the cloud as admin.",
        "export OS_PROJECT_DOMAIN_NAME=Default",
        "export OS_USER_DOMAIN_NAME=Default",
        f"export OS_PROJECT_NAME={v['keystone_admin_project']}",
        f"export OS_USERNAME={v['keystone_admin_user']}",
        f"export OS_PASSWORD='{pw['keystone_admin_password']}'",
        f"export OS_AUTH_URL={_keystone_url(v)}",
        "export OS_INTERFACE=internal",
        "export OS_ENDPOINT_TYPE=internalURL",
        "export OS_IDENTITY_API_VERSION=3",
        f"export OS_REGION_NAME={v['openstack_region_name']}",
        "export OS_AUTH_PLUGIN=password",
        "",
    ]
    clouds = {"clouds": {"stackyard-admin": {
        "auth": {"auth_url": _keystone_url(v), "username": v["keystone_admin_user"],
                 "password": pw["keystone_admin_password"], "project_name": v["keystone_admin_project"],
                 "user_domain_name": "Default", "project_domain_name": "Default"},
        "region_name": v["openstack_region_name"], "interface": "internal", "identity_api_version": 3,
    }}}
    clouds_path = dep.configdir / "clouds.yaml"
    for path, text in ((openrc, "\n".join(lines)), (clouds_path, yaml.safe_dump(clouds, sort_keys=False))):
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        path.write_text(text)
    return openrc, clouds_path


def cmd_mariadb_recovery(args: argparse.Namespace) -> int:
    from stackyard.deploy import multihost

    dep = _load(args)
    console = _console()
    start = time.monotonic()
    result = multihost.recover_galera(dep, _inventories(args), console.print)
    console.print(f"mariadb-recovery: cluster restarted from {result['bootstrap_host']} "
                  f"in {time.monotonic() - start:.1f}s")
    if args.format == "json":
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
    return 0


def cmd_post_deploy(args: argparse.Namespace) -> int:
    dep = _load(args)
    openrc, clouds = write_client_files(dep)
    print(f"wrote {openrc} and {clouds}")
    return 0


def _ports(dep: Any) -> dict[int, str]:
    v = dep.variables
    ports = {}
    for svc, key in (("mariadb", "database_port"), ("memcached", "memcached_port"),
                     ("rabbitmq", "rabbitmq_port"), ("rabbitmq", "rabbitmq_cluster_port"),
                     ("rabbitmq", "rabbitmq_epmd_port"), ("keystone", "keystone_public_port")):
        if svc in dep.enabled:
            ports[int(v[key])] = svc
    return ports


def _host_checks(dep: Any, host: str) -> dict[str, Any]:
    """What prechecks verifies on one host: its address, the ports its containers
    bind (port -> owning container) and the images it runs."""
    plan = dep.plans[host]
    names = {spec.service: spec.name for spec in plan.containers()}
    return {"address": dep.host_address(host),
            "ports": {port: names[svc] for port, svc in _ports(dep).items() if svc in names},
            "images": sorted({s.container.image for ph in plan.phases for s in ph.steps if s.container})}


def _multihost_prechecks(args: argparse.Namespace, dep: Any) -> int:
    from stackyard.deploy import multihost

    checks = {}
    for host in dep.plans:
        c = _host_checks(dep, host)
        checks[host] = dict(c, ports={str(k): v for k, v in c["ports"].items()})
    result = multihost.run_op(dep, _inventories(args), "prechecks", args={
        "checks": "{{ stackyard_checks[inventory_hostname] }}"}, limit=getattr(args, "limit", None),
        task_vars={"stackyard_checks": checks})
    problems = [t for t in result.tasks if t.get("failed") or t.get("unreachable")]
    for t in result.tasks:
        for line in (t.get("result") or {}).get("lines", []):
            print(f"{t['host']}: {line}")
    print("prechecks: " + ("passed" if not problems else f"failed on {', '.join(sorted({t['host'] for t in problems}))}"))
    return 1 if problems or result.rc != 0 else 0


def cmd_prechecks(args: argparse.Namespace) -> int:
    from stackyard.deploy.hostapply import host_prechecks

    dep = _load(args)
    if dep.remote_hosts:
        return _multihost_prechecks(args, dep)
    client = _client()  # raises when the engine is unreachable
    problems: list[str] = []
    for host in dep.plans:
        c = _host_checks(dep, host)
        problems += host_prechecks(client, c["address"], c["ports"], c["images"])
    for p in problems:
        print(f"FAIL {p}")
    print("prechecks: " + ("passed" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


def _multihost_op(args: argparse.Namespace, dep: Any, op: str, op_args: dict[str, Any] | None = None) -> int:
    from stackyard.deploy import multihost

    result = multihost.run_op(dep, _inventories(args), op, args=op_args, limit=getattr(args, "limit", None))
    for t in result.tasks:
        for line in (t.get("result") or {}).get("lines", []):
            print(f"{t['host']}: {line}")
    if result.rc != 0:
        raise DeployError(result.first_error() or f"{op} failed on {', '.join(result.failed_hosts)}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    dep = _load(args)
    if dep.remote_hosts:
        return _multihost_op(args, dep, "check")
    from stackyard.deploy.hostapply import container_health

    client = _client()
    bad = 0
    for plan in dep.plans.values():
        for spec in plan.containers():
            ok, state = container_health(client, spec)
            print(f"{'ok  ' if ok else 'FAIL'} {spec.name}: {state}")
            bad += 0 if ok else 1
    return 1 if bad else 0


def _managed(client: Any) -> list[Any]:
    from stackyard.deploy.model import MANAGED_LABEL

    return client.containers.list(all=True, filters={"label": MANAGED_LABEL})


def cmd_stop(args: argparse.Namespace) -> int:
    if args.inventory:
        dep = _load(args)
        if dep.remote_hosts:
            return _multihost_op(args, dep, "stop")
    client = _client()
    for c in _managed(client):
        if c.status == "running":
            c.stop(timeout=60)
            print(f"stopped {c.name}")
    return 0


def _rendered_dirs(args: argparse.Namespace) -> list[Path]:
    """Every directory the deployer renders into: from the plan when the config
    loads, else every known service directory under the config dir."""
    from stackyard.deploy import plan as plan_mod

    configdir = Path(args.configdir)
    dirs: set[Path] = set()
    try:
        dep = plan_mod.load(configdir, None, _extra_vars(args.extra_vars))
        plan_mod.make_plans(dep)
        for plan in dep.plans.values():
            dirs |= {Path(f.path).parent for f in plan.files}
            dirs.add(Path(plan.config_root) / ".stackyard")
    except StackyardError:
        # config no longer loads: every rendered service dir holds a config.json
        if configdir.is_dir():
            dirs.add(configdir / ".stackyard")
            dirs |= {p for p in configdir.iterdir() if (p / "config.json").exists()}
    return sorted(dirs)


def _remove_host_networking() -> None:
    """Neutron's namespaces and the provider veth outlive the containers: remove them."""
    import subprocess

    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in listing.splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(("qdhcp-", "qrouter-", "snat-", "fip-")):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)
            print(f"removed network namespace {name}")
    if subprocess.run(["ip", "link", "show", "sy-ext0"], capture_output=True).returncode == 0:
        subprocess.run(["ip", "link", "delete", "sy-ext0"], capture_output=True)
        print("removed provider veth sy-ext0/sy-ext1")


def cmd_destroy(args: argparse.Namespace) -> int:
    from stackyard.deploy.model import MANAGED_LABEL

    if not args.yes_i_really_really_mean_it:
        raise StackyardError("destroy removes every stackyard container and rendered config: "
                             "add --yes-i-really-really-mean-it")
    if args.inventory:
        dep = _load(args)
        if dep.remote_hosts:
            _multihost_op(args, dep, "destroy", {"volumes": bool(args.include_volumes)})
            state = dep.configdir / ".stackyard"
            if state.is_dir() and not getattr(args, "limit", None):
                shutil.rmtree(state)
            return 0
    client = _client()
    for c in _managed(client):
        c.remove(force=True)
        print(f"removed container {c.name}")
    configdir = Path(args.configdir)
    for d in _rendered_dirs(args):
        if d.is_dir():
            shutil.rmtree(d)
            print(f"removed {d}")
    _remove_host_networking()
    for f in ("admin-openrc.sh", "clouds.yaml"):
        if (configdir / f).exists():
            (configdir / f).unlink()
    if args.include_volumes:
        for vol in client.volumes.list(filters={"label": MANAGED_LABEL}):
            vol.remove(force=True)
            print(f"removed volume {vol.name}")
    return 0


GLOBALS_TEMPLATE = """\
# stackyard / kolla-ansible compatible globals.yml, written by `stackyard up`.
# All-in-one on loopback: every service binds to 127.0.0.1 on its standard port.
kolla_base_distro: debian
openstack_release: "2025.1"
kolla_internal_vip_address: "127.0.0.1"
network_interface: lo
docker_namespace: stackyard
enable_mariadb: true
enable_memcached: true
enable_rabbitmq: true
enable_keystone: true
enable_cron: true
"""

CLOUD_GLOBALS = """\
enable_glance: true
enable_placement: true
enable_nova: true
enable_neutron: true
enable_horizon: true
# kvm when the CPU offers hardware virtualisation, else qemu (software emulation)
nova_compute_virt_type: {virt_type}
"""


def detect_virt_type() -> str:
    """kvm only when the CPU flags show VT-x/AMD-V and /dev/kvm exists."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "qemu"
    has_flags = " vmx" in flags or " svm" in flags
    return "kvm" if has_flags and Path("/dev/kvm").exists() else "qemu"


def cmd_up(args: argparse.Namespace) -> int:
    """Fresh machine to working cloud; a second run is a fast no-op."""
    from stackyard.build import run as build_run
    from stackyard.build.config import DEFAULT_CONFIG_FILE, load_config_file, make_config
    from stackyard.build.engine import Progress
    from stackyard.deploy.passwords import genpwd

    configdir = Path(args.configdir)
    configdir.mkdir(parents=True, exist_ok=True)
    globals_path = configdir / "globals.yml"
    if not globals_path.exists():
        text = GLOBALS_TEMPLATE
        if not args.infra_only:
            text += CLOUD_GLOBALS.format(virt_type=detect_virt_type())
        globals_path.write_text(text)
        print(f"wrote all-in-one defaults to {globals_path}")
    genpwd(configdir / "passwords.yml")
    dep = _load(args)
    # build whatever images the deployment needs and is missing (cached ones take seconds)
    file_values = load_config_file(DEFAULT_CONFIG_FILE, required=False)
    bconf = make_config(file_values, {"work_dir": args.work_dir} if args.work_dir else {})
    needed = sorted({s.container.image.rsplit(":", 1)[0].rsplit("/", 1)[-1]
                     for p in dep.plans.values() for ph in p.phases for s in ph.steps if s.container})
    session = build_run.prepare(bconf, needed)
    result = build_run.execute(session, _client(), Progress(enabled=True))
    if result["failed"] or result["parent_failed"]:
        raise StackyardError(f"image build failed: {result['failed_reasons']}")
    _apply(args, dry_run=False)
    openrc, clouds = write_client_files(dep)
    if "glance" in dep.enabled and "nova" in dep.enabled:
        from stackyard.guest import build_guest, upload_guest
        from stackyard.guest.cli import connect

        guest = build_guest(Path(args.guest_work_dir))
        image_id = upload_guest(connect("stackyard-admin", str(clouds)), guest, "stackyard-guest",
                                log=lambda m: print(m, file=sys.stderr))
        print(f"guest image stackyard-guest: {image_id}")
    print(f"\nThe cloud is up. Use it with:\n  source {openrc}\n  openstack token issue\n"
          f"(or OS_CLOUD=stackyard-admin with {clouds})")
    return 0


# ----------------------------------------------------------------------------- parser
def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--configdir", default=str(DEFAULT_CONFIGDIR),
                   help="directory with globals.yml, passwords.yml and config/ (default /etc/kolla)")
    p.add_argument("-i", "--inventory", action="append", default=[],
                   help="Ansible inventory (INI or YAML); default: built-in all-in-one")
    p.add_argument("-e", "--extra-vars", dest="extra_vars", action="append", default=[],
                   help="key=value or @file.yml, overrides globals.yml")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--limit", help="only these inventory hosts or groups (Ansible pattern; multi-host)")


def register(sub: Any) -> None:
    p = sub.add_parser("genpwd", help="fill passwords.yml with strong random secrets (mode 0600)")
    _common(p)
    p.add_argument("--passwords", "-p", help="path of passwords.yml (default <configdir>/passwords.yml)")
    p.set_defaults(func=cmd_genpwd)

    p = sub.add_parser("mergepwd", help="merge an old passwords.yml into a new one")
    p.add_argument("--old", required=True)
    p.add_argument("--new", required=True)
    p.add_argument("--final", required=True)
    p.add_argument("--clean", action="store_true", help="drop keys that the new file does not have")
    p.set_defaults(func=cmd_mergepwd)

    for name, func, helptext in (
        ("deploy", cmd_deploy, "deploy or converge every enabled service"),
        ("reconfigure", cmd_deploy, "apply config changes; restarts only what changed"),
    ):
        p = sub.add_parser(name, help=helptext)
        _common(p)
        p.add_argument("--dry-run", "--check", dest="dry_run", action="store_true",
                       help="print what would change, change nothing")
        p.add_argument("--tags", action="append", default=[], help="only these services (comma list)")
        p.set_defaults(func=func)

    for name, func, helptext in (
        ("genconfig", cmd_genconfig, "render every host's config files only"),
        ("plan", cmd_plan, "print the full per-host plan as JSON (secrets masked)"),
        ("post-deploy", cmd_post_deploy, "write admin-openrc.sh and clouds.yaml"),
        ("prechecks", cmd_prechecks, "engine reachable, ports free, images present, passwords complete"),
        ("check", cmd_check, "every enabled container running and healthy"),
        ("stop", cmd_stop, "stop every stackyard container"),
        ("mariadb-recovery", cmd_mariadb_recovery,
         "restart a fully stopped Galera cluster from the member with the highest seqno"),
    ):
        p = sub.add_parser(name, help=helptext)
        _common(p)
        p.set_defaults(func=func)

    p = sub.add_parser("destroy", help="remove containers and rendered config (volumes with --include-volumes)")
    _common(p)
    p.add_argument("--yes-i-really-really-mean-it", action="store_true")
    p.add_argument("--include-volumes", action="store_true")
    p.set_defaults(func=cmd_destroy)

    p = sub.add_parser("up", help="all-in-one cloud on this machine: config, passwords, images, deploy")
    _common(p)
    p.add_argument("--work-dir", help="image build work dir")
    p.add_argument("--guest-work-dir", default="/var/lib/stackyard/guest", help="guest image build dir")
    p.add_argument("--infra-only", action="store_true",
                   help="on a fresh config, enable only MariaDB, Memcached, RabbitMQ and Keystone")
    p.add_argument("--tags", action="append", default=[])
    p.set_defaults(func=cmd_up)


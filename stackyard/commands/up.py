"""``stackyard up``: a fresh machine to a working all-in-one cloud; a second run is a fast no-op.

Writes all-in-one globals (if there are none) and passwords, builds whatever
image the deployment needs and is missing (cached ones take seconds), runs
the prechecks (a port another program holds is named, not waited for),
deploys, writes the client files, uploads the guest image and makes the
day-1 resources (``init-runonce``: flavors, public and demo networks, key pair).

``--ceph-aio`` also starts the one-node test Ceph cluster (:mod:`stackyard.cephaio`)
for the config dir before planning, and a fresh config enables Cinder and the
Glance, Cinder and Nova RBD backends on it, so the cloud runs on Ceph as most
kolla-ansible clouds do. Test and demo only: production points the same
switches at an existing Ceph's files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from stackyard import cephaio
from stackyard.commands import deploy as deploy_commands
from stackyard.commands.build import build_config, build_images
from stackyard.commands.common import add_deploy_options, console, extra_vars, load_deployment, local_engine
from stackyard.deploy import ops as deploy_ops
from stackyard.deploy.clientfiles import CLOUD_NAME, write_client_files
from stackyard.deploy.passwords import genpwd
from stackyard.errors import StackyardError
from stackyard.guest import build_guest, connect, upload_guest
from stackyard.imagebuild.config import DEBIAN_RELEASES

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

#: --infra-only: kolla-ansible's core services (those that follow enable_openstack_core) off
INFRA_ONLY_GLOBALS = """\
enable_openstack_core: false
"""

CLOUD_GLOBALS = """\
enable_glance: true
enable_placement: true
enable_nova: true
enable_neutron: true
enable_heat: true
enable_horizon: true
# kvm when the CPU offers hardware virtualisation, else qemu (software emulation)
nova_compute_virt_type: {virt_type}
"""


#: what a fresh config with --ceph-aio adds: Cinder, and Glance, Cinder and Nova on RBD
CEPH_GLOBALS = """\
# the test Ceph cluster of `stackyard up --ceph-aio` (stackyard ceph-aio): its files are in config/
enable_cinder: true
{backends}
"""


def ceph_globals() -> str:
    """The globals.yml lines --ceph-aio writes (ceph-aio's own backend lines, in its spelling)."""
    return CEPH_GLOBALS.format(backends="\n".join(cephaio.BACKEND_LINES))


def backends_off(variables: dict[str, Any]) -> list[str]:
    """The RBD switches a config (e.g. one written before --ceph-aio) leaves off."""
    keys = ("enable_cinder", "cinder_backend_ceph", "glance_backend_ceph", "nova_backend_ceph")
    return [k for k in keys if not variables.get(k)]


def start_ceph_aio(args: argparse.Namespace, flags: dict[str, Any]) -> None:
    """The test Ceph cluster of the config dir, its images built when missing; ready on return."""
    say = console().print
    evars = extra_vars(args.extra_vars)
    ports = {"mon_port": args.ceph_aio_mon_port, "mon_v1_port": args.ceph_aio_mon_v1_port}
    settings, _opts = cephaio.resolve(args.configdir, extra_vars=evars, **ports)
    engine = local_engine()
    missing = cephaio.missing_images(engine, settings)
    if missing:
        build_flags = {**flags, "namespace": settings.namespace, "tag": settings.tag,
                       "registry": settings.registry or None}
        result = build_images(build_config(None, build_flags), list(cephaio.IMAGES), engine=engine)
        if result["failed"] or result["parent_failed"]:
            raise StackyardError(f"image build failed: {result['failed_reasons']}")
    up = cephaio.up(args.configdir, extra_vars=evars, engine=engine, say=lambda m: print(m, file=sys.stderr),
                    **ports)
    state = "nothing changed" if up.nothing_changed else f"ready in {up.seconds:.0f}s"
    say(f"ceph-aio: cluster {up.fsid} is up ({up.health}); {state}")


def install_type_for(release: str, base_tag: str = "trixie") -> str:
    """binary for the release Debian ships (2025.1 in trixie), source for any other."""
    return "binary" if DEBIAN_RELEASES.get(base_tag) == release else "source"


def detect_virt_type() -> str:
    """kvm only when the CPU flags show VT-x/AMD-V and /dev/kvm exists."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "qemu"
    has_flags = " vmx" in flags or " svm" in flags
    return "kvm" if has_flags and Path("/dev/kvm").exists() else "qemu"


def cmd_up(args: argparse.Namespace) -> int:
    configdir = Path(args.configdir)
    configdir.mkdir(parents=True, exist_ok=True)
    globals_path = configdir / "globals.yml"
    if not globals_path.exists():
        text = GLOBALS_TEMPLATE
        if args.infra_only:
            text += INFRA_ONLY_GLOBALS
        else:
            text += CLOUD_GLOBALS.format(virt_type=detect_virt_type())
            if args.ceph_aio:
                text += ceph_globals()
        globals_path.write_text(text)
        print(f"wrote all-in-one defaults to {globals_path}")
    genpwd(configdir / "passwords.yml")
    if args.ceph_aio:
        # before planning: the plans read the Ceph files the cluster writes into config/
        start_ceph_aio(args, {"work_dir": args.work_dir} if args.work_dir else {})
    dep = load_deployment(args)
    if args.ceph_aio and backends_off(dep.variables):
        print(f"note: {globals_path} leaves {', '.join(backends_off(dep.variables))} off: the test Ceph "
              "cluster runs, but those services do not use it", file=sys.stderr)
    v = dep.variables
    # the images the plans name, built under the deployment's namespace and tag: Debian's
    # packages for Debian's release, else the release from source
    needed = sorted({ref.rsplit(":", 1)[0].rsplit("/", 1)[-1] for p in dep.plans.values() for ref in p.images()})
    flags: dict[str, Any] = {"namespace": v["docker_namespace"], "tag": v["openstack_tag"],
                             "registry": v["docker_registry"] or None,
                             "openstack_release": v["openstack_release"],
                             "install_type": install_type_for(v["openstack_release"])}
    if args.work_dir:
        flags["work_dir"] = args.work_dir
    result = build_images(build_config(None, flags), needed, engine=local_engine(dep))
    if result["failed"] or result["parent_failed"]:
        raise StackyardError(f"image build failed: {result['failed_reasons']}")
    # a port held by something else would leave a service waiting for it: say so before deploying
    checked = deploy_ops.prechecks(dep, local_engine(dep), [])
    if not checked.ok:
        raise StackyardError("prechecks failed: " + "; ".join(checked.problems))
    deploy_commands.apply(args, dry_run=False, dep=dep)
    openrc, clouds = write_client_files(dep)
    if "glance" in dep.enabled and "nova" in dep.enabled:
        guest = build_guest(Path(args.guest_work_dir))
        image_id = upload_guest(connect(CLOUD_NAME, str(clouds)), guest, "stackyard-guest",
                                log=lambda m: print(m, file=sys.stderr))
        print(f"guest image stackyard-guest: {image_id}")
        report = deploy_commands.init_runonce(dep)
        print(f"day-1 resources: {len(report['changed'])} created, {len(report['present'])} present")
    print(f"\nThe cloud is up. Use it with:\n  source {openrc}\n  openstack token issue\n"
          f"(or OS_CLOUD={CLOUD_NAME} with {clouds})")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("up", help="all-in-one cloud on this machine: config, passwords, images, deploy")
    add_deploy_options(p)
    p.add_argument("--work-dir", help="image build work dir")
    p.add_argument("--guest-work-dir", default="/var/lib/stackyard/guest", help="guest image build dir")
    p.add_argument("--infra-only", action="store_true",
                   help="on a fresh config, enable only MariaDB, Memcached, RabbitMQ and Keystone")
    p.add_argument("--ceph-aio", dest="ceph_aio", action="store_true",
                   help="also run the one-node test Ceph cluster (stackyard ceph-aio) for this config dir; on a "
                        "fresh config, enable Cinder and the Glance, Cinder and Nova RBD backends on it")
    p.add_argument("--ceph-aio-mon-port", dest="ceph_aio_mon_port", type=int, default=None,
                   help="the test Ceph monitor's msgr v2 port (ceph-aio's default 3300)")
    p.add_argument("--ceph-aio-mon-v1-port", dest="ceph_aio_mon_v1_port", type=int, default=None,
                   help="the test Ceph monitor's msgr v1 port (ceph-aio's default 6789)")
    p.add_argument("--tags", action="append", default=[])
    p.set_defaults(func=cmd_up)

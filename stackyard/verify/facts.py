"""The facts tempest.conf is made from, read from the deployment and from the cloud itself.

The day-1 resources (flavors, public network) must exist: ``stackyard verify``
makes them first (:mod:`stackyard.deploy.day1`), and uploads the guest image.
Whatever the cloud answers is taken as it is: the Neutron extensions the
server loaded, Nova's maximum microversion, the number of compute hosts.
"""

from __future__ import annotations

from typing import Any

from stackyard.deploy import day1
from stackyard.deploy.clientfiles import keystone_url
from stackyard.deploy.plan import Deployment
from stackyard.errors import DeployError
from stackyard.verify.tempestconf import CloudFacts

#: the day-1 flavors Tempest boots (flavor_ref, and flavor_ref_alt for resizes)
FLAVOR, FLAVOR_ALT = "m1.nano", "m1.micro"


def _one_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def catalog_types(conn: Any) -> frozenset[str]:
    """Service types with an endpoint in this region (what the admin's token carries)."""
    catalog = conn.session.auth.get_access(conn.session).service_catalog
    region = conn.config.get_region_name()
    out = set()
    for entry in catalog.catalog:
        if any(ep.get("region_id", ep.get("region")) in (region, None) for ep in entry.get("endpoints", [])):
            out.add(entry["type"])
    return frozenset(out)


def compute_max_microversion(conn: Any) -> str:
    doc = conn.compute.get("/", microversion=None).json()
    version = doc.get("version") or {}
    return str(version.get("version") or "")


def version_max(doc: dict) -> str:
    """The maximum microversion in an API's version document (``{"version": …}`` or
    ``{"versions": [ … ]}``, the current one)."""
    if isinstance(doc.get("version"), dict):
        return str(doc["version"].get("version") or "")
    for entry in doc.get("versions") or []:
        if entry.get("status", "").upper() == "CURRENT":
            return str(entry.get("version") or "")
    return ""


def volume_facts(conn: Any) -> tuple[str, bool]:
    """Cinder's maximum microversion, and whether a cinder-backup service is up."""
    micro = version_max(conn.block_storage.get("/", microversion=None).json())
    backup = any(s.binary == "cinder-backup" and s.state == "up" for s in conn.block_storage.services())
    return micro, backup


def gather(dep: Deployment, conn: Any, *, image_name: str, image_file: str, run_dir: str) -> CloudFacts:
    """Everything :func:`~stackyard.verify.tempestconf.tempest_conf` needs; DeployError naming what is missing."""
    v, pw = dep.variables, dep.passwords
    try:
        services = catalog_types(conn)
        image = conn.image.find_image(image_name, ignore_missing=True)
        if image is None:
            raise DeployError(f"verify: image {image_name} is not in Glance (stackyard verify uploads it first)")
        props = {k: str(image.properties.get(k) or getattr(image, k, "") or "")
                 for k in ("kernel_id", "ramdisk_id")}
        flavors = {f.name: f.id for f in conn.compute.flavors()}
        missing = [n for n in (FLAVOR, FLAVOR_ALT) if n not in flavors]
        if missing:
            raise DeployError(f"verify: flavor {', '.join(missing)} missing (run stackyard init-runonce)")
        public_id = public_name = ""
        extensions: tuple[str, ...] = ()
        if "network" in services:
            net = day1.find_public_network(conn, str(v["neutron_physical_network"]))
            if net is None:
                raise DeployError("verify: no public network (run stackyard init-runonce)")
            public_id, public_name = net.id, net.name
            extensions = tuple(sorted(e.alias for e in conn.network.extensions()))
        hosts = len([s for s in conn.compute.services(binary="nova-compute") if s.state == "up"])
        micro = compute_max_microversion(conn)
        volume_micro, volume_backup = ("", False)
        if services & {"block-storage", "volumev3"}:
            volume_micro, volume_backup = volume_facts(conn)
    except DeployError:
        raise
    except Exception as exc:  # noqa: BLE001 - an API that does not answer: one line
        raise DeployError(f"verify: reading the cloud failed: {_one_line(exc)}") from None
    horizon = ""
    if dep.variables.get("enable_horizon"):
        port = v.get("horizon_port", 80)
        horizon = f"http://{v['kolla_internal_fqdn']}{'' if int(port) == 80 else f':{port}'}/"
    return CloudFacts(
        auth_url=keystone_url(v), region=str(v["openstack_region_name"]), admin_user=str(v["keystone_admin_user"]),
        admin_password=str(pw["keystone_admin_password"]), admin_project=str(v["keystone_admin_project"]),
        services=services | (frozenset({"dashboard"}) if horizon else frozenset()),
        image_id=image.id, image_alt_id=image.id, flavor_id=flavors[FLAVOR], flavor_alt_id=flavors[FLAVOR_ALT],
        public_network_id=public_id, public_network_name=public_name, network_extensions=extensions,
        compute_max_microversion=micro, compute_hosts=max(hosts, 1),
        vnc_console="nova" in dep.enabled,  # nova-novncproxy comes with Nova
        dashboard_url=horizon, image_file=image_file, image_properties={k: p for k, p in props.items() if p},
        run_dir=run_dir, volume_max_microversion=volume_micro, volume_backup=volume_backup,
    )

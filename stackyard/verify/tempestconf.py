"""tempest.conf as data, from what the deployment is (pure: facts in, sections out).

Every value here follows from a fact about the deployed cloud, so the same
cloud always gives the same file and a test is skipped only because the cloud
lacks what it needs, never because nobody configured it:

- services: what is enabled *and* in the catalog;
- Neutron: the API extensions the server actually loaded;
- Nova: its maximum microversion, and the features one all-in-one compute
  host has (resize to the same host, no live migration, console output, a
  noVNC proxy but no serial console proxy);
- the day-1 flavors, the stackyard guest (root over SSH, udhcpc, sudo) and the
  public network, with floating IPs reached from this host;
- Cinder: its maximum microversion and whether a cinder-backup service is up;
  one backend (RBD: snapshots, clones, extend with snapshots; no multiattach
  type, no encryption without Barbican).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from stackyard.deploy.merge import IniConf, render_ini

#: the Tempest release `stackyard verify` installs (branchless: one release tests many OpenStack releases)
TEMPEST_VERSION = "47.0.0"

#: catalog service type -> tempest's [service_available] key
SERVICE_KEYS = {
    "compute": "nova",
    "image": "glance",
    "network": "neutron",
    "volumev3": "cinder",
    "block-storage": "cinder",
    "orchestration": "heat",
    "object-store": "swift",
    "dashboard": "horizon",
}


@dataclass(frozen=True)
class CloudFacts:
    """What tempest.conf is made from."""

    auth_url: str                      # Keystone v3, as this host reaches it
    region: str
    admin_user: str
    admin_password: str
    admin_project: str
    #: catalog service types this host can use (compute, image, network, placement …)
    services: frozenset[str]
    image_id: str
    image_alt_id: str
    flavor_id: str
    flavor_alt_id: str
    public_network_id: str = ""
    public_network_name: str = ""
    #: Neutron API extension aliases the server loaded
    network_extensions: tuple[str, ...] = ()
    compute_max_microversion: str = ""
    compute_hosts: int = 1
    #: nova-novncproxy is deployed
    vnc_console: bool = False
    dashboard_url: str = ""
    #: the machine image file and its kernel/ramdisk image IDs: scenario tests upload their own copy
    image_file: str = ""
    image_properties: dict[str, str] = field(default_factory=dict)
    image_ssh_user: str = "root"
    #: OS_CACERT-style bundle for https endpoints; empty: plain http
    ca_file: str = ""
    #: where Tempest keeps its log and locks
    run_dir: str = ""
    #: Cinder's maximum microversion, and whether a cinder-backup service is up
    volume_max_microversion: str = ""
    volume_backup: bool = False
    #: what Cinder's backend reports (capabilities volume types are matched on)
    volume_storage_protocol: str = "ceph"
    volume_vendor_name: str = "Open Source"


def tempest_conf(f: CloudFacts) -> IniConf:
    """Every section of tempest.conf for ``f``."""
    available = {key: False for key in ("nova", "glance", "neutron", "cinder", "heat", "swift", "horizon")}
    for service_type, key in SERVICE_KEYS.items():
        if service_type in f.services:
            available[key] = True
    run_dir = Path(f.run_dir) if f.run_dir else Path(".")
    conf: IniConf = {
        "DEFAULT": {"log_dir": str(run_dir), "log_file": "tempest.log", "use_stderr": False},
        "oslo_concurrency": {"lock_path": str(run_dir / "locks")},
        "auth": {
            "admin_username": f.admin_user,
            "admin_password": f.admin_password,
            "admin_project_name": f.admin_project,
            "admin_domain_name": "Default",
            "use_dynamic_credentials": True,
            "create_isolated_networks": available["neutron"],
            "default_credentials_domain_name": "Default",
        },
        "identity": {
            "uri_v3": f.auth_url,
            "auth_version": "v3",
            "region": f.region,
            "v3_endpoint_type": "internal",
            "disable_ssl_certificate_validation": False,
            "ca_certificates_file": f.ca_file or None,
        },
        "identity-feature-enabled": {"api_v2": False, "api_v3": True, "security_compliance": False},
        "service_available": available,
    }
    if available["nova"]:
        conf["compute"] = {
            "image_ref": f.image_id,
            "image_ref_alt": f.image_alt_id,
            "flavor_ref": f.flavor_id,
            "flavor_ref_alt": f.flavor_alt_id,
            "region": f.region,
            "endpoint_type": "internal",
            "min_compute_nodes": f.compute_hosts,
            "max_microversion": f.compute_max_microversion or None,
            # software emulation (TCG) boots slowly: the defaults assume KVM
            "build_timeout": 600,
            "fixed_network_name": None,
        }
        single = f.compute_hosts < 2
        conf["compute-feature-enabled"] = {
            "resize": True,                 # allow_resize_to_same_host = True
            "cold_migration": not single,
            "live_migration": not single,
            "live_migrate_back_and_forth": False,
            "block_migration_for_live_migration": False,
            "console_output": True,         # the serial console log (nova.conf [serial_console])
            "vnc_console": f.vnc_console,
            "serial_console": False,        # no nova-serialproxy is deployed
            "spice_console": False,
            "rdp_console": False,
            "change_password": False,       # needs a guest agent the guest does not run
            "config_drive": False,          # nova-compute's image has no ISO maker
            "metadata_service": True,
            "personality": False,
            "pause": True,
            "suspend": True,
            "shelve": True,
            "shelve_migrate": False,
            "snapshot": True,
            "rescue": True,
            "stable_rescue": False,
            "interface_attach": True,
            "scheduler_enabled_filters": "all",
            "swap_volume": False,
            "volume_multiattach": False,
            "attach_encrypted_volume": False,
            "volume_backed_live_migration": False,
            "hostname_fqdn_sanitization": True,
        }
        conf["validation"] = {
            "run_validation": available["neutron"],
            "connect_method": "floating",
            "auth_method": "keypair",
            "ip_version_for_ssh": 4,
            "image_ssh_user": f.image_ssh_user,
            "image_alt_ssh_user": f.image_ssh_user,
            "ssh_key_type": "rsa",
            "network_for_ssh": f.public_network_name or None,
            "floating_ip_range": None,
            "ping_timeout": 180,
            "connect_timeout": 60,
            "ssh_timeout": 300,
        }
        conf["scenario"] = {
            "img_file": f.image_file or None,
            "img_container_format": "ami",
            "img_disk_format": "ami",
            "img_properties": ",".join(f"{k}:{v}" for k, v in sorted(f.image_properties.items())) or None,
            "dhcp_client": "udhcpc",
        }
    if available["glance"]:
        conf["image"] = {"region": f.region, "endpoint_type": "internal"}
        conf["image-feature-enabled"] = {"api_v2": True, "api_v1": False, "import_image": False,
                                         "os_glance_reserved": True}
    if available["neutron"]:
        conf["network"] = {
            "region": f.region,
            "endpoint_type": "internal",
            "public_network_id": f.public_network_id or None,
            "floating_network_name": f.public_network_name or None,
            "project_network_cidr": "10.100.0.0/16",
            "project_network_mask_bits": 28,
            "project_networks_reachable": False,
            "shared_physical_network": False,
        }
        conf["network-feature-enabled"] = {
            "api_extensions": ",".join(sorted(f.network_extensions)) or "None",
            "ipv6": True,
            "ipv6_subnet_attributes": True,
            "port_security": "port-security" in f.network_extensions,
            "floating_ips": "router" in f.network_extensions,
        }
    if available["cinder"]:
        conf["volume"] = {
            "region": f.region,
            "endpoint_type": "internal",
            "catalog_type": "block-storage" if "block-storage" in f.services else "volumev3",
            "min_microversion": "3.0",
            "max_microversion": f.volume_max_microversion or None,
            "backup_driver": "ceph",
            "storage_protocol": f.volume_storage_protocol,
            "vendor_name": f.volume_vendor_name,
            "volume_size": 1,
            # a volume made from an image is copied and converted under TCG-slow I/O
            "build_timeout": 600,
        }
        conf["volume-feature-enabled"] = {
            "backup": f.volume_backup,
            "snapshot": True,
            "clone": True,
            "multi_backend": False,
            "manage_volume": False,
            "manage_snapshot": False,
            "replication": False,
            "extend_attached_volume": False,
            "extend_attached_encrypted_volume": False,
            "extend_volume_with_snapshot": True,
            "api_extensions": "all",
        }
    if "placement" in f.services:
        conf["placement"] = {"region": f.region, "endpoint_type": "internal"}
    if available["horizon"] and f.dashboard_url:
        conf["dashboard"] = {"dashboard_url": f.dashboard_url.rstrip("/") + "/",
                             "disable_ssl_certificate_validation": False}
    return conf


def render(f: CloudFacts) -> str:
    """tempest.conf's text (it holds the admin password: write it 0600)."""
    return ("# Generated by stackyard verify from the deployment; rewritten on every run.\n"
            + render_ini(tempest_conf(f)))

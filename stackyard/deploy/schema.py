"""The table of globals.yml keys stackyard knows, and the services it can deploy.

Why a table and not scattered ``vars.get("x", default)`` calls: one place gives
the loader everything it needs to warn about typos (the nearest known key),
reject wrong types with a precise message, and print a reference for operators.
Names and defaults follow kolla-ansible so an existing ``globals.yml`` keeps
its meaning.

Defaults may be Jinja strings (``"{{ openstack_release }}"``) exactly like
kolla-ansible's derived defaults; :mod:`stackyard.deploy.config` renders them
after the operator's values are merged in, so overriding the base key also
moves everything derived from it.

Network ports all stay below 32768 so they never collide with the Linux
ephemeral port range (32768-60999) that outgoing connections use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The value types a globals.yml key can have (YAML's scalar/collection kinds).
OptionType = type[str] | type[bool] | type[int] | type[list] | type[dict]


@dataclass(frozen=True)
class Option:
    """One known globals.yml key.

    ``choices`` is set only where a wrong value would otherwise fail late and
    obscurely (e.g. an unknown container engine fails at the first container).
    """

    name: str
    type: OptionType
    default: Any
    help: str
    choices: tuple[str, ...] | None = None


def _opts(*options: Option) -> dict[str, Option]:
    """Index options by name, refusing duplicates (a duplicate is a bug here)."""
    table: dict[str, Option] = {}
    for opt in options:
        if opt.name in table:
            raise AssertionError(f"duplicate option {opt.name!r} in schema")
        table[opt.name] = opt
    return table


#: Every known globals.yml key, by name. Order is the reference order in docs.
OPTIONS: dict[str, Option] = _opts(
    # --- images ------------------------------------------------------------
    Option("kolla_base_distro", str, "debian",
           "Distribution the images are built on.",
           choices=("debian", "ubuntu", "rocky", "centos")),
    Option("openstack_release", str, "2025.1",
           "OpenStack release series to deploy (quote it: 2025.1 is a number in YAML)."),
    Option("openstack_tag", str, "{{ openstack_release }}",
           "Image tag to deploy; follows openstack_release unless set."),
    Option("docker_registry", str, "",
           "Registry host[:port] to pull images from; empty means the local engine."),
    Option("docker_registry_insecure", bool, False,
           "Talk plain HTTP to docker_registry."),
    Option("docker_registry_username", str, "",
           "User for docker_registry (the password goes in passwords.yml)."),
    Option("docker_namespace", str, "stackyard",
           "Image name prefix (namespace) in the registry."),
    Option("kolla_container_engine", str, "docker",
           "Container engine on the target hosts.", choices=("docker", "podman")),
    Option("config_strategy", str, "COPY_ALWAYS",
           "KOLLA_CONFIG_STRATEGY given to containers.",
           choices=("COPY_ALWAYS", "COPY_ONCE")),
    Option("default_container_dimensions", dict, {},
           "Resource limits applied to every container (engine keys, e.g. mem_limit)."),
    # --- directories --------------------------------------------------------
    Option("node_config_directory", str, "/etc/kolla",
           "Where rendered per-service configuration is written on each host."),
    # --- addresses and interfaces -------------------------------------------
    Option("kolla_internal_vip_address", str, "127.0.0.1",
           "Address internal endpoints and clients use (a host address on one node)."),
    Option("kolla_internal_fqdn", str, "{{ kolla_internal_vip_address }}",
           "DNS name for the internal address; defaults to the address itself."),
    Option("kolla_external_vip_address", str, "{{ kolla_internal_vip_address }}",
           "Address for public endpoints; defaults to the internal address."),
    Option("kolla_external_fqdn", str, "{{ kolla_external_vip_address }}",
           "DNS name for the public address."),
    Option("api_interface_address", str, "{{ kolla_internal_vip_address }}",
           "Address services bind to on each host (all-in-one: the internal VIP, 127.0.0.1)."),
    Option("mariadb_max_connections", int, 1000, "MariaDB max_connections."),
    Option("mariadb_cluster_name", str, "openstack", "Galera cluster name (multi-host MariaDB)."),
    Option("mariadb_sst_method", str, "mariabackup",
           "Galera state transfer method for a joining node.", choices=("mariabackup", "rsync")),
    Option("mariadb_wsrep_port", int, 4567, "Galera replication port."),
    Option("mariadb_ist_port", int, 4568, "Galera incremental state transfer port."),
    Option("mariadb_sst_port", int, 4444, "Galera state snapshot transfer port."),
    Option("keystone_api_workers", int, 2, "uWSGI processes of the Keystone API."),
    Option("memcached_max_memory", int, 128, "Memcached memory limit in MB."),
    Option("network_interface", str, "eth0",
           "Default interface for all networks unless a more specific one is set."),
    Option("api_interface", str, "{{ network_interface }}",
           "Interface API services listen on."),
    Option("tunnel_interface", str, "{{ network_interface }}",
           "Interface tenant (VXLAN) tunnels use. On Open vSwitch's userspace datapath a NIC other than "
           "api_interface is needed between hosts: its address moves into the br-phy bridge."),
    Option("neutron_external_interface", str, "",
           "Interface handed to Neutron for provider/external networks (no address on it)."),
    # --- services -----------------------------------------------------------
    Option("enable_loadbalancer", bool, False,
           "Deploy HAProxy + keepalived holding kolla_internal_vip_address (multi-host; "
           "the all-in-one binds services on the VIP itself)."),
    Option("enable_haproxy", bool, "{{ enable_loadbalancer }}", "Deploy HAProxy (follows enable_loadbalancer)."),
    Option("enable_keepalived", bool, "{{ enable_loadbalancer }}",
           "Deploy keepalived (follows enable_loadbalancer)."),
    Option("keepalived_virtual_router_id", int, 51, "VRRP router id of the internal VIP (1-255)."),
    Option("haproxy_monitor_port", int, 31313, "HAProxy health URI port on each host's API address."),
    Option("enable_mariadb", bool, True, "Deploy MariaDB (the SQL database)."),
    Option("enable_memcached", bool, True, "Deploy memcached (token and session cache)."),
    Option("enable_rabbitmq", bool, True, "Deploy RabbitMQ (the RPC message bus)."),
    Option("enable_keystone", bool, True, "Deploy Keystone (identity)."),
    Option("enable_cron", bool, True, "Deploy the cron container (log rotation) on every host."),
    Option("enable_glance", bool, False, "Deploy Glance (images)."),
    Option("enable_placement", bool, False, "Deploy Placement (resource inventory)."),
    Option("enable_nova", bool, False, "Deploy Nova (compute)."),
    Option("enable_neutron", bool, False, "Deploy Neutron (networking)."),
    Option("enable_horizon", bool, False, "Deploy Horizon (dashboard)."),
    Option("enable_openvswitch", bool, "{{ enable_neutron }}",
           "Deploy Open vSwitch (userspace datapath) for Neutron; follows enable_neutron."),
    Option("ovsdb_port", int, 6640, "OVSDB TCP port (bound to the API address)."),
    # --- ports ----------------------------------------------------------------
    Option("database_port", int, 3306, "MariaDB port."),
    Option("memcached_port", int, 11211, "memcached port."),
    Option("rabbitmq_port", int, 5672, "RabbitMQ AMQP port."),
    Option("rabbitmq_management_port", int, 15672, "RabbitMQ management UI/API port."),
    Option("rabbitmq_cluster_port", int, 25672, "RabbitMQ inter-node (Erlang distribution) port."),
    Option("rabbitmq_epmd_port", int, 4369, "Erlang port mapper port used by RabbitMQ."),
    Option("keystone_public_port", int, 5000, "Keystone public API port."),
    Option("keystone_internal_port", int, 5000,
           "Keystone internal API port (same as public since the admin API is gone)."),
    Option("glance_api_port", int, 9292, "Glance API port."),
    Option("placement_api_port", int, 8780, "Placement API port."),
    Option("nova_api_port", int, 8774, "Nova API port."),
    Option("nova_metadata_port", int, 8775, "Nova metadata API port."),
    Option("nova_novncproxy_port", int, 6080, "Nova noVNC console proxy port."),
    Option("neutron_server_port", int, 9696, "Neutron API port."),
    Option("horizon_port", int, 80, "Horizon HTTP port."),
    # --- users, names and behaviour -----------------------------------------
    Option("database_user", str, "root", "MariaDB administrative user."),
    Option("rabbitmq_user", str, "openstack", "RabbitMQ user all services use."),
    Option("keystone_admin_user", str, "admin", "Cloud administrator user created in Keystone."),
    Option("keystone_admin_project", str, "admin", "Project the administrator belongs to."),
    Option("openstack_region_name", str, "RegionOne", "Region name registered in the catalog."),
    Option("multiple_regions_names", list, ["{{ openstack_region_name }}"],
           "All region names (multi-region setups)."),
    Option("openstack_logging_debug", bool, False, "Set debug = True in every service."),
    Option("keystone_token_provider", str, "fernet", "Keystone token format.",
           choices=("fernet",)),
    Option("fernet_token_expiry", int, 86400, "Token lifetime in seconds."),
    Option("nova_compute_virt_type", str, "kvm",
           "Hypervisor type for libvirt; use qemu where /dev/kvm is missing (nested VMs).",
           choices=("kvm", "qemu")),
    Option("neutron_plugin_agent", str, "openvswitch", "Neutron L2 agent (2025.1 has no Linux bridge agent).",
           choices=("openvswitch",)),
)


#: Deployable services and the services each one needs running first.
#: The key ``<name>`` is switched by ``enable_<name>``. Order is deploy order.
SERVICES: dict[str, tuple[str, ...]] = {
    "loadbalancer": (),
    "cron": (),
    "mariadb": (),
    "memcached": (),
    "rabbitmq": (),
    "openvswitch": (),
    "keystone": ("mariadb", "memcached"),
    "glance": ("keystone", "mariadb"),
    "placement": ("keystone", "mariadb"),
    "nova": ("keystone", "mariadb", "rabbitmq", "placement", "glance"),
    "neutron": ("keystone", "mariadb", "rabbitmq", "openvswitch"),
    "horizon": ("keystone", "memcached"),
}


def enable_flag(service: str) -> str:
    """The globals.yml key that switches ``service`` on or off."""
    return f"enable_{service}"


def defaults() -> dict[str, Any]:
    """A fresh copy of every default (copies, so callers may mutate lists/dicts)."""
    import copy

    return {name: copy.deepcopy(opt.default) for name, opt in OPTIONS.items()}

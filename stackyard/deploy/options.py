"""The type of a globals.yml key, and the keys that belong to no single service.

Each service module declares its own keys (its ports, workers, tunables) in its
:class:`~stackyard.deploy.services.base.Service` record; :mod:`.schema` joins
these with the global keys below into the one table the loader validates
against. Names and defaults follow kolla-ansible so an existing
``globals.yml`` keeps its meaning.

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
    ``pattern`` (a regular expression the whole value must match) likewise.
    ``unsupported`` marks a kolla-ansible key whose only value stackyard
    implements is the default: any other value is refused with this reason,
    never accepted and ignored.
    """

    name: str
    type: OptionType
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    pattern: str | None = None
    unsupported: str = ""


#: Keys of the deployment as a whole (images, addresses, names), in reference order.
GLOBAL_OPTIONS: tuple[Option, ...] = (
    # --- images ------------------------------------------------------------
    Option("kolla_base_distro", str, "debian",
           "Distribution the images are built on (stackyard builds Debian images only).",
           choices=("debian",)),
    Option("openstack_release", str, "2025.1",
           "OpenStack release series to deploy (quote it: 2025.1 is a number in YAML). Debian's "
           "packages (binary images) are 2025.1; later releases are source images.",
           pattern=r"\d{4}\.[12]"),
    Option("openstack_tag", str, "{{ openstack_release }}",
           "Image tag to deploy; follows openstack_release unless set."),
    Option("docker_registry", str, "",
           "Registry host[:port] to pull images from; empty means the local engine."),
    Option("docker_registry_insecure", bool, False,
           "Talk plain HTTP to docker_registry."),
    Option("docker_registry_username", str, "",
           "User for docker_registry (the password goes in passwords.yml).",
           unsupported="registry authentication is not implemented yet: use a registry without login"),
    Option("docker_namespace", str, "stackyard",
           "Image name prefix (namespace) in the registry."),
    Option("kolla_container_engine", str, "docker",
           "Container engine on the target hosts (podman is not supported yet).", choices=("docker",)),
    Option("config_strategy", str, "COPY_ALWAYS",
           "KOLLA_CONFIG_STRATEGY given to containers.",
           choices=("COPY_ALWAYS", "COPY_ONCE")),
    Option("default_container_dimensions", dict, {},
           "Resource limits applied to every container (engine keys, e.g. mem_limit).",
           unsupported="container resource limits are not implemented yet"),
    Option("stackyard_name_prefix", str, "",
           "Prefix of every container, volume and host resource name (stackyard only): lets a second "
           "deployment share a host's engine, on other addresses (labs, tests). Open vSwitch bridges are "
           "host-wide: only one deployment per host may run Neutron.",
           pattern=r"([a-z0-9][a-z0-9_-]{0,11})?"),
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
    Option("network_interface", str, "eth0",
           "Default interface for all networks unless a more specific one is set."),
    Option("api_interface", str, "{{ network_interface }}",
           "Interface API services listen on."),
    Option("tunnel_interface", str, "{{ network_interface }}",
           "Interface tenant (VXLAN) tunnels use. On Open vSwitch's userspace datapath a NIC other than "
           "api_interface is needed between hosts: its address moves into the br-phy bridge."),
    Option("neutron_external_interface", str, "",
           "Interface handed to Neutron for provider/external networks (no address on it)."),
    # --- names and behaviour -------------------------------------------------
    Option("openstack_region_name", str, "RegionOne", "Region name registered in the catalog."),
    Option("multiple_regions_names", list, ["{{ openstack_region_name }}"],
           "All region names (multi-region setups).",
           unsupported="multi-region deployments are not implemented yet"),
    Option("openstack_logging_debug", bool, False, "Set debug = True in every service."),
    # --- external Ceph (kolla-ansible's group_vars/all/ceph.yml) -------------
    Option("ceph_cluster", str, "ceph",
           "Name of the external Ceph cluster: the services read config/<service>/<ceph_cluster>.conf and "
           "<ceph_cluster>.client.<user>.keyring, installed into /etc/ceph.",
           pattern=r"[A-Za-z0-9][A-Za-z0-9_.-]*"),
    Option("external_ceph_cephx_enabled", bool, True,
           "The external Ceph cluster uses cephx authentication (keyrings, libvirt secrets).",
           unsupported="Ceph without cephx authentication is not implemented"),
    # --- which services ---------------------------------------------------------
    Option("enable_openstack_core", bool, True,
           "kolla-ansible's switch for its core services: the enable_ flags of the services that follow it "
           "(Heat today) default to it, so false leaves them out unless enabled one by one."),
)

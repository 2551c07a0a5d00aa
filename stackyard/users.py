"""Fixed UIDs/GIDs of service users, the same numbers as Kolla's table.

Why fixed: config files and data volumes are written on the host by the deployer
and read inside containers, and images built on different days or machines must
agree on who owns them. Using Kolla's numbers lets an operator move volumes
between a Kolla deployment and ours.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceUser:
    name: str
    uid: int
    gid: int
    home: str
    groups: tuple[str, ...] = ("kolla",)


KOLLA_GID = 42400

USERS: dict[str, ServiceUser] = {
    u.name: u
    for u in (
        ServiceUser("kolla", 42400, 42400, "/var/lib/kolla", ()),
        ServiceUser("glance", 42415, 42415, "/var/lib/glance"),
        ServiceUser("horizon", 42420, 42420, "/var/lib/horizon"),
        ServiceUser("keystone", 42425, 42425, "/var/lib/keystone"),
        ServiceUser("qemu", 42427, 42427, "/var/lib/qemu"),
        ServiceUser("mysql", 42434, 42434, "/var/lib/mysql"),
        ServiceUser("neutron", 42435, 42435, "/var/lib/neutron"),
        ServiceUser("nova", 42436, 42436, "/var/lib/nova"),
        ServiceUser("rabbitmq", 42439, 42439, "/var/lib/rabbitmq"),
        ServiceUser("haproxy", 42454, 42454, "/var/lib/haproxy"),
        ServiceUser("memcached", 42457, 42457, "/run/memcached"),
        ServiceUser("placement", 42482, 42482, "/var/lib/placement"),
    )
}


def uid_of(name: str) -> int:
    """UID of a service user; raises KeyError for an unknown user."""
    return USERS[name].uid


def gid_of(name: str) -> int:
    return USERS[name].gid

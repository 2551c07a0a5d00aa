"""Galera membership rules: when a MariaDB member joins, forms a cluster, or refuses.

The riskiest decision in a deploy: forming a *new* cluster from a member that
is not the most advanced one silently throws away every row written since.
So the rules are pure functions over an observed state, unit-tested from
tables (``tests/unit/agent/test_galera.py``), and the executor only performs
what they return.

The rules:

* a running member with the planned spec is left alone;
* a member joins when at least one peer answers (or when it has no peers:
  a single-node MariaDB is not a cluster);
* only the inventory's first member may form a cluster, only when no peer
  answers, and only if this host never formed one and holds no old member
  container: otherwise the cluster is down and must be restarted from its
  most advanced member (``stackyard mariadb-recovery``), not from whichever
  host runs first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .decide import Act, Action
from .engine import ContainerState
from .model import SPEC_LABEL

#: set on a member started with --wsrep-new-cluster; finalize restarts it as a member
BOOTSTRAP_LABEL = "org.stackyard.galera-bootstrap"
#: galera-start (in the mariadb-server image) adds --wsrep-new-cluster when this is set
NEW_CLUSTER_ENV = "STACKYARD_GALERA_NEW_CLUSTER"
#: the job-state key recording that this host formed a Galera cluster once
FORMED_KEY = "galera-cluster-formed"


@dataclass(frozen=True)
class Observed:
    """What the executor saw before deciding about one member."""

    want: str                           # the planned spec hash
    current: ContainerState | None      # this host's member container
    peers: list[str] = field(default_factory=list)     # every other member, host:port
    peers_up: list[str] = field(default_factory=list)  # those that accept connections now
    first: bool = False                 # the inventory's first mariadb host
    formed_before: bool = False         # this host formed a cluster once (job state)


def member_action(obs: Observed) -> Action:
    """What to do with this host's member (see the module rules)."""
    cur = obs.current
    same = cur is not None and cur.labels.get(SPEC_LABEL) == obs.want
    if same and cur is not None and cur.running:
        return Action(Act.NOTHING, "running")
    if same:
        if obs.peers and not obs.peers_up:
            return Action(Act.FAIL, "mariadb is stopped and no Galera peer is up: the cluster is down; "
                                    "run 'stackyard mariadb-recovery'")
        return Action(Act.START, "(joins the cluster)")
    if obs.peers_up or not obs.peers:
        act = Act.CREATE if cur is None else Act.RECREATE
        return Action(act, f"(joined the cluster via {obs.peers_up[0]})" if obs.peers_up else "")
    if not obs.first:
        return Action(Act.FAIL, f"no Galera peer answers ({', '.join(obs.peers)}); the first mariadb host "
                                f"forms the cluster: deploy it first, or run 'stackyard mariadb-recovery'")
    if obs.formed_before or cur is not None:
        return Action(Act.FAIL, "the Galera cluster this host belongs to is down; run "
                                "'stackyard mariadb-recovery' to restart it from the most advanced node")
    return Action(Act.FORM)


def finalize_action(current: ContainerState | None, peers_up: list[str]) -> Action:
    """Restart the member that formed the cluster as an ordinary member, once another is up.

    Left in bootstrap mode, a later restart of that container would form a
    second, empty cluster; restarted as a member, it rejoins the others by IST.
    """
    if current is None or current.labels.get(BOOTSTRAP_LABEL) != "true":
        return Action(Act.NOTHING, "member")
    if not peers_up:
        return Action(Act.NOTHING, "no other member yet: stays the bootstrap node")
    return Action(Act.RECREATE, "as a cluster member")


def choose_bootstrap_host(hosts: list[str], seqnos: dict[str, int]) -> str:
    """``mariadb-recovery``: the highest seqno wins; on a tie, the first host in inventory order."""
    return max(hosts, key=lambda h: (seqnos[h], -hosts.index(h)))


def same_cluster(uuids: dict[str, str]) -> bool:
    """Every member that knows its cluster UUID names the same one (all-zero means unknown)."""
    return len({u for u in uuids.values() if u and not u.startswith("00000000")}) <= 1

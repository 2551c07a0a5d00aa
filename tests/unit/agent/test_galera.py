"""Galera membership rules, from tables of observed states (no engine)."""

from __future__ import annotations

import pytest

from stackyard.agent.decide import Act
from stackyard.agent.engine import ContainerState
from stackyard.agent.galera import (
    BOOTSTRAP_LABEL, Observed, choose_bootstrap_host, finalize_action, member_action, same_cluster,
)
from stackyard.agent.model import SPEC_LABEL

WANT = "h-new"
PEERS = ["10.0.0.12:4567", "10.0.0.13:4567"]


def member(status: str = "running", spec: str = WANT, bootstrap: bool = False) -> ContainerState:
    labels = {SPEC_LABEL: spec}
    if bootstrap:
        labels[BOOTSTRAP_LABEL] = "true"
    return ContainerState(name="mariadb", id="c1", status=status, labels=labels)


# (current, peers, peers_up, first, formed_before) -> expected act, and a word the detail must hold
CASES = [
    # running with the planned spec: nothing, whatever the peers say
    (member(), PEERS, [], False, True, Act.NOTHING, "running"),
    # single node (no peers): create, recreate, start like any container
    (None, [], [], True, False, Act.CREATE, ""),
    (member(spec="old"), [], [], True, True, Act.RECREATE, ""),
    (member(status="exited"), [], [], True, True, Act.START, "joins"),
    # a peer answers: join it, never form
    (None, PEERS, PEERS[1:], False, False, Act.CREATE, PEERS[1]),
    (None, PEERS, PEERS[1:], True, False, Act.CREATE, PEERS[1]),
    (member(spec="old"), PEERS, PEERS, True, True, Act.RECREATE, PEERS[0]),
    (member(status="exited"), PEERS, PEERS[:1], False, True, Act.START, "joins"),
    # stopped member, planned spec, no peer up: the cluster is down
    (member(status="exited"), PEERS, [], True, True, Act.FAIL, "mariadb-recovery"),
    (member(status="exited"), PEERS, [], False, False, Act.FAIL, "mariadb-recovery"),
    # nobody up: only the first host, never formed before, with no old member, forms
    (None, PEERS, [], True, False, Act.FORM, ""),
    (None, PEERS, [], False, False, Act.FAIL, "deploy it first"),
    (None, PEERS, [], True, True, Act.FAIL, "mariadb-recovery"),
    (member(spec="old"), PEERS, [], True, False, Act.FAIL, "mariadb-recovery"),
]


@pytest.mark.parametrize("current, peers, up, first, formed, act, word", CASES)
def test_member_action(current, peers, up, first, formed, act, word) -> None:
    action = member_action(Observed(want=WANT, current=current, peers=peers, peers_up=up, first=first,
                                    formed_before=formed))
    assert action.act == act
    assert word in action.describe(dry_run=False)


def test_a_new_cluster_is_formed_only_from_an_empty_start() -> None:
    """Every observed state that forms a cluster has no peer up, no member and no history."""
    for current in (None, member(), member(status="exited"), member(spec="old")):
        for up in ([], PEERS[:1]):
            for first in (True, False):
                for formed in (True, False):
                    obs = Observed(WANT, current, PEERS, up, first, formed)
                    if member_action(obs).act == Act.FORM:
                        assert (current, up, first, formed) == (None, [], True, False)


@pytest.mark.parametrize("current, up, act", [
    (None, PEERS, Act.NOTHING),
    (member(), PEERS, Act.NOTHING),                       # an ordinary member
    (member(bootstrap=True), [], Act.NOTHING),            # alone: stays the bootstrap node
    (member(bootstrap=True), PEERS[:1], Act.RECREATE),    # others up: restart as a member
])
def test_finalize(current, up, act) -> None:
    assert finalize_action(current, up).act == act


def test_recovery_picks_the_highest_seqno_then_inventory_order() -> None:
    hosts = ["node1", "node2", "node3"]
    assert choose_bootstrap_host(hosts, {"node1": 5, "node2": 9, "node3": 9}) == "node2"
    assert choose_bootstrap_host(hosts, {"node1": -1, "node2": -1, "node3": -1}) == "node1"


def test_members_of_different_clusters_are_refused() -> None:
    zero = "00000000-0000-0000-0000-000000000000"
    assert same_cluster({"a": "u1", "b": "u1", "c": zero})
    assert not same_cluster({"a": "u1", "b": "u2"})

"""Dependency graph and image selection."""

from __future__ import annotations

import pytest

from stackyard.imagebuild.catalog import render_all
from stackyard.deploy.services import build_profiles
from stackyard.imagebuild.graph import ImageGraph
from stackyard.imagebuild.select import select_images
from stackyard.errors import ConfigError, GraphError, ImageNotFoundError


def child_of(parent: str, body: str = "") -> str:
    return "FROM {{ image_ref('%s') }}\n%s" % (parent, body)


@pytest.fixture
def graph(config, tree) -> ImageGraph:
    """Our tree plus keystone-ssh (FROM keystone) and keystone-extra (FROM base)."""
    dd = tree({
        "keystone-ssh/Dockerfile.j2": child_of("keystone"),
        "keystone-extra/Dockerfile.j2": child_of("base"),
    })
    return ImageGraph.from_images(render_all(config(docker_dirs=[dd])))


def select(graph, patterns, **kw):
    kw.setdefault("profiles", build_profiles())
    return select_images(graph, patterns, **kw)


# ----------------------------------------------------------------- graph
def test_order_parents_first_and_deterministic(graph):
    order = graph.order()
    assert order == graph.order()
    assert sorted(order) == sorted(graph.parents)
    for name, parents in graph.parents.items():
        for p in parents:
            assert order.index(p) < order.index(name), (p, name)
    assert order[0] == "base"


def test_children_ancestors_descendants(graph):
    assert "keystone" in graph.children["openstack-base"]
    assert graph.children["keystone"] == ["keystone-ssh"]
    assert graph.ancestors("keystone-ssh") == {"keystone", "openstack-base", "base"}
    assert {"keystone", "keystone-ssh"} <= graph.descendants("openstack-base")
    assert graph.descendants("keystone") == {"keystone-ssh"}
    assert graph.roots() == ["base"]
    tree = graph.as_tree()
    assert tree["base"]["openstack-base"]["keystone"] == {"keystone-ssh": {}}
    assert '"keystone" -> "keystone-ssh";' in graph.as_dot()


def test_missing_parent_is_graph_error(config, tree):
    dd = tree({"orphan/Dockerfile.j2": child_of("no-such-parent")})
    with pytest.raises(GraphError) as err:
        ImageGraph.from_images(render_all(config(docker_dirs=[dd])))
    msg = str(err.value)
    assert "orphan" in msg and "no-such-parent" in msg and "missing parent" in msg
    assert str(dd / "orphan" / "Dockerfile.j2") in msg


def test_cycle_is_graph_error_naming_the_cycle(config, tree):
    dd = tree({
        "aa/Dockerfile.j2": child_of("cc"),
        "bb/Dockerfile.j2": child_of("aa"),
        "cc/Dockerfile.j2": child_of("bb"),
    })
    with pytest.raises(GraphError) as err:
        ImageGraph.from_images(render_all(config(docker_dirs=[dd])))
    msg = str(err.value)
    assert "cycle" in msg
    assert "aa -> cc -> bb -> aa" in msg


def test_self_cycle():
    with pytest.raises(GraphError, match="loop -> loop"):
        ImageGraph({"loop": ("loop",)}).order()


# ----------------------------------------------------------------- selection
def test_exact_names_not_substrings(graph):
    assert select(graph, ["keystone"]) == {"keystone", "openstack-base", "base"}
    assert select(graph, ["keystone"], skip_parents=True) == {"keystone"}


def test_regex_only_when_asked(graph):
    with pytest.raises(ImageNotFoundError):
        select(graph, ["keystone.*"])
    assert select(graph, ["^keystone"], regex=True, skip_parents=True) == {
        "keystone", "keystone-ssh", "keystone-extra"}
    assert select(graph, ["ssh$"], regex=True) == {"keystone-ssh", "keystone", "openstack-base", "base"}


def test_bad_regex_is_config_error(graph):
    with pytest.raises(ConfigError, match="invalid regex"):
        select(graph, ["("], regex=True)


def test_regex_matching_nothing(graph):
    with pytest.raises(ImageNotFoundError, match="matches no image"):
        select(graph, ["^zzz"], regex=True)


def test_no_arguments_selects_everything(graph):
    assert select(graph, []) == set(graph.parents)


def test_profiles(graph):
    infra = select(graph, [], profile=["infra"], skip_parents=True)
    assert infra == {"mariadb-server", "memcached", "rabbitmq", "cron", "haproxy", "keepalived"}
    assert select(graph, [], profile=["infra"]) == infra | {"base"}
    # a profile name is also accepted as a positional argument
    core = set(build_profiles()["core"])
    assert select(graph, ["core"]) == core | {a for name in core for a in graph.ancestors(name)}
    assert "keystone-ssh" not in select(graph, ["core"])
    assert select(graph, ["all"]) == set(graph.parents)
    assert select(graph, [], profile=["all"]) == set(graph.parents)
    # profiles and names combine
    assert select(graph, ["keystone-ssh"], profile=["infra"], skip_parents=True) == infra | {"keystone-ssh"}


def test_custom_profile(graph):
    profiles = dict(build_profiles(), ssh=["keystone-ssh"])
    assert select(graph, [], profile=["ssh"], profiles=profiles, skip_parents=True) == {"keystone-ssh"}


def test_unknown_profile(graph):
    with pytest.raises(ConfigError, match="unknown profile 'nope'"):
        select(graph, [], profile=["nope"])


@pytest.mark.parametrize("as_flag", [True, False])
def test_profile_naming_unknown_image(graph, as_flag):
    profiles = dict(build_profiles(), broken=["keystone", "no-such-image"])
    kw = {"profile": ["broken"]} if as_flag else {}
    with pytest.raises(ImageNotFoundError, match="profile 'broken' names unknown image 'no-such-image'"):
        select(graph, [] if as_flag else ["broken"], profiles=profiles, **kw)


def test_unknown_name_with_suggestion(graph):
    with pytest.raises(ImageNotFoundError) as err:
        select(graph, ["keystonee"])
    assert str(err.value) == "unknown image 'keystonee' (did you mean 'keystone'?)"
    with pytest.raises(ImageNotFoundError) as err:
        select(graph, ["zzzzzz"])
    assert str(err.value) == "unknown image 'zzzzzz'"

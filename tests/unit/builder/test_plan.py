"""Content hashes, install type and build contexts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile

import pytest

from stackyard.imagebuild.catalog import render_all
from stackyard.imagebuild.engine import make_context
from stackyard.imagebuild.graph import ImageGraph
from stackyard.imagebuild.plan import (
    HASH_SCHEME,
    build_args,
    check_install_type,
    content_hash,
    make_plan,
)
from stackyard.errors import ConfigError

EXTERNAL = {"debian:trixie": "sha256:" + "1" * 64}


def child_of(parent: str, body: str = "") -> str:
    return "FROM {{ image_ref('%s') }}\n%s" % (parent, body)


def hashes(cfg, external=EXTERNAL) -> dict[str, str]:
    images = render_all(cfg)
    plans = make_plan(cfg, images, ImageGraph.from_images(images), external)
    return {n: p.hash for n, p in plans.items()}


@pytest.fixture
def hashed_tree(tree):
    """A docker dir with image 'ctx' (FROM base, one context file) and child 'ctx-child'."""
    return tree({
        "ctx/Dockerfile.j2": child_of("base", "COPY data.txt /data.txt\n"),
        "ctx/data.txt": "v1\n",
        "ctx-child/Dockerfile.j2": child_of("ctx"),
    })


def test_hash_deterministic_in_process(config):
    assert hashes(config()) == hashes(config())
    assert all(len(h) == 64 for h in hashes(config()).values())


def test_hash_deterministic_across_processes(service_users):
    """Two interpreters (different hash seeds) compute the same hashes."""
    code = (
        "import json,sys;from stackyard.imagebuild.config import BuildConfig;"
        "from stackyard.imagebuild.catalog import render_all;from stackyard.imagebuild.graph import ImageGraph;"
        "from stackyard.imagebuild.plan import make_plan;"
        "c=BuildConfig(work_dir='/tmp/x',users=json.loads(sys.argv[1]));i=render_all(c);"
        "print(json.dumps({n:p.hash for n,p in make_plan(c,i,ImageGraph.from_images(i),{}).items()}))"
    )
    outs = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        r = subprocess.run([sys.executable, "-c", code, json.dumps(service_users)], capture_output=True,
                           text=True, env=env, check=True)
        outs.append(json.loads(r.stdout))
    assert outs[0] == outs[1]
    assert set(outs[0]) >= {"base", "keystone"}


def test_context_file_change(config, hashed_tree):
    before = hashes(config(docker_dirs=[hashed_tree]))
    (hashed_tree / "ctx" / "data.txt").write_text("v2\n")
    after = hashes(config(docker_dirs=[hashed_tree]))
    assert before["ctx"] != after["ctx"]
    assert before["ctx-child"] != after["ctx-child"]  # ripples down
    assert before["base"] == after["base"] and before["keystone"] == after["keystone"]


def test_mtime_does_not_change_hash(config, hashed_tree):
    before = hashes(config(docker_dirs=[hashed_tree]))
    os.utime(hashed_tree / "ctx" / "data.txt", (1, 1))
    assert hashes(config(docker_dirs=[hashed_tree])) == before


def test_executable_bit_changes_hash(config, hashed_tree):
    before = hashes(config(docker_dirs=[hashed_tree]))
    (hashed_tree / "ctx" / "data.txt").chmod(0o755)
    assert hashes(config(docker_dirs=[hashed_tree]))["ctx"] != before["ctx"]


def test_new_context_file_changes_hash(config, hashed_tree):
    before = hashes(config(docker_dirs=[hashed_tree]))
    (hashed_tree / "ctx" / "more.txt").write_text("x")
    assert hashes(config(docker_dirs=[hashed_tree]))["ctx"] != before["ctx"]


def test_dockerfile_change(config, hashed_tree):
    before = hashes(config(docker_dirs=[hashed_tree]))
    tpl = hashed_tree / "ctx" / "Dockerfile.j2"
    tpl.write_text(tpl.read_text() + "RUN true\n")
    after = hashes(config(docker_dirs=[hashed_tree]))
    assert before["ctx"] != after["ctx"] and before["ctx-child"] != after["ctx-child"]
    assert before["base"] == after["base"]


def test_template_var_change(config):
    before = hashes(config())
    after = hashes(config(template_vars={"keystone_packages_append": ["less"]}))
    assert before["keystone"] != after["keystone"]
    assert before["openstack-base"] == after["openstack-base"]


def test_parent_change_ripples_to_every_descendant(config, tree):
    dd = tree({"base/apt/policy-rc.d": "#!/bin/sh\nexit 101 # changed\n"})
    before = hashes(config())
    after = hashes(config(docker_dirs=[dd]))
    assert all(before[n] != after[n] for n in before), "every image descends from base"


def test_external_base_image_id_changes_hash(config):
    before = hashes(config())
    after = hashes(config(), {"debian:trixie": "sha256:" + "2" * 64})
    assert all(before[n] != after[n] for n in before)


def test_build_arg_changes_hash_but_proxy_does_not(config):
    img = render_all(config())["memcached"]
    base = content_hash(img, ["p"], [], {})
    assert content_hash(img, ["p"], [], {"FOO": "1"}) != base
    assert content_hash(img, ["p"], [], {"FOO": "1"}) != content_hash(img, ["p"], [], {"FOO": "2"})
    assert content_hash(img, ["p"], [], {"http_proxy": "http://127.0.0.1:3142"}) == base
    assert content_hash(img, ["q"], [], {}) != base


def test_apt_proxy_does_not_change_hash(config):
    plain = hashes(config())
    proxied_cfg = config(apt_proxy="http://127.0.0.1:3142")
    assert build_args(proxied_cfg)["http_proxy"] == "http://127.0.0.1:3142"
    assert hashes(proxied_cfg) == plain


def test_tag_and_namespace_change_no_hash(config):
    """Parents count by their hash, not by the ref they have this time."""
    plain = hashes(config())
    assert hashes(config(tag="other")) == plain
    assert hashes(config(namespace="elsewhere", registry="127.0.0.1:5000")) == plain


def test_infrastructure_images_are_the_same_for_every_release_and_install_type(config):
    """An upgrade to source 2026.1 finds MariaDB, RabbitMQ, Open vSwitch, libvirt … already
    built (same hash) and does not restart them; OpenStack images differ."""
    binary = hashes(config())
    source = hashes(config(install_type="source"))
    same = {"base", "cron", "haproxy", "keepalived", "mariadb-server", "memcached", "rabbitmq",
            "openvswitch-base", "openvswitch-db-server", "openvswitch-vswitchd", "nova-libvirt"}
    for name in same:
        assert binary[name] == source[name], name
    for name in ("openstack-base", "keystone", "nova-compute", "neutron-server", "horizon"):
        assert binary[name] != source[name], name


def test_hash_scheme_is_versioned():
    assert HASH_SCHEME.startswith("stackyard-build-")


def test_plan_refs_and_args(config):
    cfg = config(registry="127.0.0.1:5000", apt_proxy="http://127.0.0.1:3142")
    images = render_all(cfg)
    plans = make_plan(cfg, images, ImageGraph.from_images(images), {})
    assert plans["keystone"].ref == "127.0.0.1:5000/stackyard/keystone:2025.1"
    assert plans["keystone"].parents == ["openstack-base"]
    assert plans["base"].external == ["debian:trixie"]
    assert plans["base"].build_args == {"http_proxy": "http://127.0.0.1:3142",
                                         "HTTP_PROXY": "http://127.0.0.1:3142"}
    assert list(plans)[0] == "base"


# ----------------------------------------------------------------- install type
def test_source_build_refuses_an_image_without_a_source_recipe(config, tree):
    dd = tree({"old/Dockerfile.j2": child_of("base", "{% if install_type == 'source' %}\n"
                                                      "# stackyard: binary-only\n{% endif %}\n")})
    cfg = config(install_type="source", docker_dirs=[dd])
    images = render_all(cfg)
    with pytest.raises(ConfigError) as err:
        check_install_type(cfg, images, {"old", "keystone", "base"})
    assert "no source recipe for image(s) old" in str(err.value)
    check_install_type(cfg, images, {"keystone", "base"})     # keystone has one, base needs none
    check_install_type(config(docker_dirs=[dd]), render_all(config(docker_dirs=[dd])), {"old"})  # binary


def test_source_keystone_installs_its_pinned_release_from_the_wheel_cache(config):
    images = render_all(config(install_type="source"))
    keystone = images["keystone"]
    assert keystone.pip_requirements == ["keystone==29.1.0"]
    assert "--no-index" in keystone.dockerfile and "apt-get install" not in keystone.dockerfile
    assert "upper-constraints.txt" in images["openstack-base"].files
    assert "oslo.config" in images["openstack-base"].pip_requirements
    assert "FROM stackyard/openstack-base:2026.1" in keystone.dockerfile


def test_the_wheel_builder_exists_only_for_source_builds(config):
    assert "openstack-builder" not in render_all(config())
    builder = render_all(config(install_type="source"))["openstack-builder"]
    assert "build-essential" in builder.dockerfile and builder.parents == ["base"]


def test_source_build_release_must_match_for_binary():
    from stackyard.imagebuild.config import BuildConfig

    with pytest.raises(ConfigError, match="binary images are Debian trixie's packages .*needs install_type source"):
        BuildConfig(openstack_release="2026.1")
    assert BuildConfig(install_type="source").openstack_release == "2026.1"
    assert BuildConfig(install_type="source").tag == "2026.1"


def test_unknown_install_type():
    from stackyard.imagebuild.config import BuildConfig

    with pytest.raises(ConfigError, match="install_type: 'rpm' is not one of binary, source"):
        BuildConfig(install_type="rpm")


# ----------------------------------------------------------------- build context
def _plan(cfg, name):
    images = render_all(cfg)
    return make_plan(cfg, images, ImageGraph.from_images(images), {})[name]


def test_make_context_reproducible(config, hashed_tree):
    plan = _plan(config(docker_dirs=[hashed_tree]), "ctx")
    first = make_context(plan).getvalue()
    os.utime(hashed_tree / "ctx" / "data.txt", (12345, 12345))
    second = make_context(_plan(config(docker_dirs=[hashed_tree]), "ctx")).getvalue()
    assert first == second
    base = _plan(config(), "base")
    assert make_context(base).getvalue() == make_context(base).getvalue()


def test_make_context_modes(config, hashed_tree):
    (hashed_tree / "ctx" / "run.sh").write_text("#!/bin/sh\n")
    (hashed_tree / "ctx" / "run.sh").chmod(0o700)
    (hashed_tree / "ctx" / "data.txt").chmod(0o600)
    with tarfile.open(fileobj=make_context(_plan(config(docker_dirs=[hashed_tree]), "ctx"))) as tar:
        assert tar.getmember("run.sh").mode == 0o755
        assert tar.getmember("data.txt").mode == 0o644


def test_make_context_contents(config):
    plan = _plan(config(), "keystone")
    with tarfile.open(fileobj=make_context(plan)) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names[0] == "Dockerfile"
        assert names[1:] == sorted(names[1:])
        assert "hooks/bootstrap" in names
        assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members)
        for rel, src in plan.files.items():
            want = 0o755 if os.access(src, os.X_OK) else 0o644
            assert tar.getmember(rel).mode == want, rel
        assert tar.extractfile("Dockerfile").read().decode() == plan.dockerfile

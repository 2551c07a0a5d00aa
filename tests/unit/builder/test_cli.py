"""``stackyard build`` on bad input: exit 2, one line on stderr, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import stackyard.engine
from stackyard import cli
from stackyard.engine import ImageInfo
from stackyard.errors import MirrorError
from stackyard.imagebuild.baseimage import check_mirror


def child_of(parent: str, body: str = "") -> str:
    return "FROM {{ image_ref('%s') }}\n%s" % (parent, body)


@pytest.fixture
def run(tmp_path, capsys):
    empty = tmp_path / "empty-build.yml"
    empty.write_text("")

    def go(*argv: str, config: Path | None = None) -> tuple[int, str, str]:
        args = ["build", "--config", str(config or empty), "--work-dir", str(tmp_path / "work"), *argv]
        code = cli.main(args)
        out, err = capsys.readouterr()
        return code, out, err

    return go


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("stackyard: error: ")
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


# ----------------------------------------------------------------- good paths
def test_list_images_in_dependency_order(run):
    code, out, _ = run("keystone", "--list-images")
    assert code == 0
    assert out.split() == ["base", "openstack-base", "keystone"]


def test_list_dependencies_formats(run):
    code, out, _ = run("--list-dependencies", "json")
    assert code == 0
    tree = json.loads(out)
    assert "keystone" in tree["base"]["openstack-base"]
    code, out, _ = run("--list-dependencies")
    assert code == 0 and out.splitlines()[0] == "base" and "    keystone" in out
    code, out, _ = run("--list-dependencies", "dot")
    assert code == 0 and out.startswith("digraph") and '"openstack-base" -> "keystone";' in out


def test_template_only_writes_dockerfiles_and_context(run, tmp_path):
    code, out, _ = run("keystone", "--template-only")
    assert code == 0 and "wrote 3 Dockerfiles" in out
    root = tmp_path / "work" / "docker"
    assert (root / "keystone" / "Dockerfile").read_text().startswith("FROM stackyard/openstack-base:2025.1")
    assert (root / "keystone" / "hooks" / "bootstrap").is_file()
    assert (root / "base" / "container" / "start.py").is_file()
    assert not (root / "memcached").exists()


def test_config_file_values_are_used(run, tmp_path):
    cfg = tmp_path / "b.yml"
    cfg.write_text("profiles:\n  mine: [memcached]\nskip_parents: true\n")
    code, out, _ = run("mine", "--list-images", config=cfg)
    assert code == 0 and out.split() == ["memcached"]


# ----------------------------------------------------------------- bad input
def test_unknown_image(run):
    code, _, err = run("keystonee", "--list-images")
    assert_one_line_error(code, err, "unknown image 'keystonee'", "did you mean 'keystone'?")


def test_substring_is_not_a_name(run):
    code, _, err = run("key", "--list-images")
    assert_one_line_error(code, err, "unknown image 'key'")


def test_template_error(run, tmp_path):
    dd = tmp_path / "dd"
    (dd / "oops").mkdir(parents=True)
    (dd / "oops" / "Dockerfile.j2").write_text(child_of("base", "RUN {{ undefined_thing }}\n"))
    code, _, err = run("--docker-dir", str(dd), "--list-images")
    assert_one_line_error(code, err, str(dd / "oops" / "Dockerfile.j2"), "undefined_thing", "'oops'")


def test_template_override_error(run, tmp_path):
    o = tmp_path / "o.j2"
    o.write_text("{% block keystone_footer %}{% endblock %}\n")
    code, _, err = run("--template-override", str(o), "--list-images")
    assert_one_line_error(code, err, str(o), "extends parent_template")


def test_missing_parent(run, tmp_path):
    dd = tmp_path / "dd"
    (dd / "orphan").mkdir(parents=True)
    (dd / "orphan" / "Dockerfile.j2").write_text(child_of("ghost"))
    code, _, err = run("--docker-dir", str(dd), "orphan", "--list-images")
    assert_one_line_error(code, err, "orphan", "'ghost'", "missing parent")


def test_dependency_cycle(run, tmp_path):
    dd = tmp_path / "dd"
    for name, parent in (("ping", "pong"), ("pong", "ping")):
        (dd / name).mkdir(parents=True)
        (dd / name / "Dockerfile.j2").write_text(child_of(parent))
    code, _, err = run("--docker-dir", str(dd), "--list-images")
    assert_one_line_error(code, err, "dependency cycle", "ping -> pong -> ping")


def test_missing_docker_dir(run, tmp_path):
    code, _, err = run("--docker-dir", str(tmp_path / "nope"), "--list-images")
    assert_one_line_error(code, err, "is not a directory")


@pytest.mark.parametrize(
    "text, needles",
    [
        ("threads: 2\ntag: [oops\n", ("invalid YAML", "bad.yml:3:")),
        ("thread: 2\n", ("unknown key 'thread'", "did you mean 'threads'?")),
        ("threads: many\n", ("key 'threads' must be int",)),
        ("install_type: rpm\n", ("install_type: 'rpm'",)),
    ],
)
def test_bad_config_file(run, tmp_path, text, needles):
    cfg = tmp_path / "bad.yml"
    cfg.write_text(text)
    code, _, err = run("--list-images", config=cfg)
    assert_one_line_error(code, err, *needles)


def test_missing_config_file(run, tmp_path):
    code, _, err = run("--list-images", config=tmp_path / "absent.yml")
    assert_one_line_error(code, err, "absent.yml", "does not exist")


def test_unknown_profile(run):
    code, _, err = run("--profile", "nope", "--list-images")
    assert_one_line_error(code, err, "unknown profile 'nope'")


def test_profile_with_unknown_member(run, tmp_path):
    cfg = tmp_path / "p.yml"
    cfg.write_text("profiles:\n  mine: [keystone, ghost]\n")
    code, _, err = run("mine", "--list-images", config=cfg)
    assert_one_line_error(code, err, "profile 'mine' names unknown image 'ghost'")


def test_source_install_type(run):
    code, out, err = run("keystone", "--install-type", "source", "--list-images")
    assert code == 0, err
    assert out.split() == ["base", "openstack-base", "keystone"]
    code, out, err = run("nova-api", "--install-type", "source", "--list-images")
    assert code == 0 and out.split() == ["base", "openstack-base", "nova-base", "nova-api"], err
    code, _, err = run("keystone", "--install-type", "source", "--openstack-release", "2031.1", "--list-images")
    assert_one_line_error(code, err, "openstack_release", "2031.1")


def test_bad_regex(run):
    code, _, err = run("--regex", "(", "--list-images")
    assert_one_line_error(code, err, "invalid regex")


# ----------------------------------------------------------------- mirror
def test_check_mirror_unreachable():
    with pytest.raises(MirrorError) as err:
        check_mirror("http://127.0.0.1:9/debian", "trixie", timeout=5)
    msg = str(err.value)
    assert msg.startswith("mirror http://127.0.0.1:9/debian is unreachable")
    assert "\n" not in msg


def test_check_mirror_unreachable_proxy():
    with pytest.raises(MirrorError, match="via proxy http://127.0.0.1:9"):
        check_mirror("http://deb.debian.org/debian", "trixie", proxy="http://127.0.0.1:9", timeout=5)


class _BaseOnlyEngine:
    """Just enough of :class:`stackyard.engine.Engine`: the base image exists, nothing is built."""

    def image(self, ref: str) -> ImageInfo | None:
        return ImageInfo(id="sha256:" + "a" * 64) if ref == "debian:trixie" else None

    def images(self, label: str | None = None) -> list[ImageInfo]:
        return []

    def close(self) -> None:
        pass


def test_unreachable_mirror_through_cli(run, monkeypatch):
    engine = _BaseOnlyEngine()
    # the CLI reaches the engine through the adapter's connect()
    monkeypatch.setattr(stackyard.engine, "connect", lambda *a, **kw: engine)
    monkeypatch.setattr(stackyard.engine.Engine, "connect", classmethod(lambda cls, *a, **kw: engine))
    code, _, err = run("memcached", "--apt-mirror", "http://127.0.0.1:9/debian")
    assert_one_line_error(code, err, "mirror http://127.0.0.1:9/debian is unreachable")

"""INI override merging with oslo.config semantics; finding and rendering overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackyard.deploy import services
from stackyard.deploy.context import PlanContext
from stackyard.deploy.merge import (
    ini_data,
    merge_ini,
    parse_ini,
    render_and_merge,
    render_ini,
    render_override,
    serialize_ini,
    unused_overrides,
)
from stackyard.errors import ConfigError

def merge_texts(pairs: list[tuple[str, str]]) -> str:
    """Parse each (source, text), layer them in order, write the result."""
    parsed = [parse_ini(text, source) for source, text in pairs]
    return serialize_ini(merge_ini(parsed[0], *parsed[1:]))


def find_overrides(configdir: Path, project: str, service: str, host: str) -> list[Path]:
    """The override files a service of ``project`` (declaring kolla-ansible's oslo.config
    lookup, OSLO_OVERRIDES) reads for config dir ``service`` on ``host``."""
    svc = next(s for s in services.ALL.values() if s.project == project)
    ctx = PlanContext(host=host, variables={}, passwords={}, configdir=configdir,
                      config_root=configdir / "out", service=svc, users=services.users())
    return ctx.overrides(service)


BASE = """\
[DEFAULT]
debug = False
transport_url = rabbit://a
[database]
connection = mysql+pymysql://x
max_retries = -1
[oslo_messaging]
driver = messagingv2
"""


# --- parsing ----------------------------------------------------------------

def test_parse_keeps_order_and_repeated_keys():
    data = parse_ini("[DEFAULT]\nb = 1\na = 2\nb = 3\n[s]\nk: v\nq = \"quoted\"\n")
    assert list(data["DEFAULT"]) == ["b", "a"]
    assert data["DEFAULT"]["b"] == ["1", "3"]
    assert data["s"] == {"k": ["v"], "q": ["quoted"]}


def test_parse_continuation_lines_and_comments():
    data = parse_ini("# top\n[s]\n; note\nk = first\n  second\n\tthird\nn = 1\n")
    assert data["s"]["k"] == ["first\nsecond\nthird"]
    assert data["s"]["n"] == ["1"]


def test_parse_empty_section_and_value():
    data = parse_ini("[empty]\n[s]\nk =\n")
    assert data == {"empty": {}, "s": {"k": [""]}}


@pytest.mark.parametrize("text,line,fragment", [
    ("[DEFAULT]\nnovalue\n", 2, "No ':' or '='"),
    ("key = value\n", 1, "Section must be started"),
    ("[DEFAULT]\n\n  continued\n", 3, "Unexpected continuation"),
    ("[DEFAULT\n", 1, "must end with ]"),
    ("[]\n", 1, "Empty section name"),
    ("[s]\n= v\n", 2, "Key cannot be empty"),
])
def test_parse_errors_name_file_and_line(text, line, fragment):
    with pytest.raises(ConfigError) as exc:
        parse_ini(text, "/etc/kolla/config/nova.conf")
    assert f"/etc/kolla/config/nova.conf:{line}:" in str(exc.value)
    assert fragment in str(exc.value)


# --- merging ----------------------------------------------------------------

def test_later_file_wins_per_key_and_replaces_all_values():
    base = parse_ini("[DEFAULT]\nx = 1\nx = 2\ny = keep\n")
    over = parse_ini("[DEFAULT]\nx = 9\n")
    assert merge_ini(base, over)["DEFAULT"] == {"x": ["9"], "y": ["keep"]}


def test_override_can_make_a_key_multivalued():
    base = parse_ini("[filter]\nhost = a\n")
    over = parse_ini("[filter]\nhost = b\nhost = c\n")
    assert merge_ini(base, over)["filter"]["host"] == ["b", "c"]


def test_merge_order_last_wins():
    a = parse_ini("[s]\nk = a\n")
    b = parse_ini("[s]\nk = b\n")
    c = parse_ini("[s]\nk = c\n")
    assert merge_ini(a, b, c)["s"]["k"] == ["c"]
    assert merge_ini(a, c, b)["s"]["k"] == ["b"]


def test_merge_does_not_mutate_inputs():
    base = parse_ini("[s]\nk = a\n")
    merge_ini(base, parse_ini("[s]\nk = b\nn = 1\n[t]\nz = 1\n"))
    assert base == {"s": {"k": ["a"]}}


def test_merge_keeps_base_order_and_appends_new_keys():
    out = merge_texts([("base", BASE),
                       ("over", ("[new]\nz = 1\n[database]\nmax_retries = 10\nextra = yes\n"
                                 "[DEFAULT]\ndebug = True\n"))])
    assert out == (
        "[DEFAULT]\ndebug = True\ntransport_url = rabbit://a\n\n"
        "[database]\nconnection = mysql+pymysql://x\nmax_retries = 10\nextra = yes\n\n"
        "[oslo_messaging]\ndriver = messagingv2\n\n"
        "[new]\nz = 1\n")


def test_default_section_is_written_first():
    out = merge_texts([("base", "[database]\na = 1\n"), ("over", "[DEFAULT]\ndebug = True\n")])
    assert out.startswith("[DEFAULT]\ndebug = True\n")


def test_serialization_round_trips():
    text = ("[DEFAULT]\nk = v\nm = 1\nm = 2\nq = \"'both quoted'\"\nlong = a\n    b\n"
            "empty =\n[other]\nurl = http://h:5000/v3?a=b\n")
    data = parse_ini(text)
    assert parse_ini(serialize_ini(data)) == data
    assert serialize_ini(parse_ini(serialize_ini(data))) == serialize_ini(data)


def test_serialization_is_deterministic():
    assert merge_texts([("a", BASE), ("b", "[x]\ny = 1\n")]) == \
        merge_texts([("a", BASE), ("b", "[x]\ny = 1\n")])


def test_parse_error_names_the_override_file():
    with pytest.raises(ConfigError, match="over.conf:2"):
        merge_texts([("base", BASE), ("over.conf", "[s]\nbroken\n")])


# --- finding overrides ------------------------------------------------------

def make(root: Path, *rels: str) -> None:
    for rel in rels:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"[DEFAULT]\nsource = {rel}\n")


def test_find_overrides_in_order(tmp_path):
    make(tmp_path, "config/nova/node1/nova-api.conf", "config/global.conf",
         "config/nova/nova-api.conf", "config/nova.conf", "config/nova/node1/nova.conf",
         "config/nova/node2/nova-api.conf", "config/keystone.conf")
    found = find_overrides(tmp_path, "nova", "nova-api", "node1")
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "config/global.conf", "config/nova.conf", "config/nova/nova-api.conf",
        "config/nova/node1/nova.conf", "config/nova/node1/nova-api.conf"]


def test_find_overrides_only_existing_and_no_duplicates(tmp_path):
    assert find_overrides(tmp_path, "keystone", "keystone", "h") == []
    make(tmp_path, "config/keystone/h/keystone.conf", "config/keystone.conf")
    found = find_overrides(tmp_path, "keystone", "keystone", "h")
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "config/keystone.conf", "config/keystone/h/keystone.conf"]


def test_overrides_merge_in_found_order(tmp_path):
    make(tmp_path, "config/global.conf", "config/nova.conf", "config/nova/nova-api.conf",
         "config/nova/node1/nova-api.conf")
    base = {"DEFAULT": {"source": "generated", "kept": "yes"}}
    found = find_overrides(tmp_path, "nova", "nova-api", "node1")
    out = render_and_merge(base, found, {})
    assert parse_ini(out)["DEFAULT"]["source"] == ["config/nova/node1/nova-api.conf"]
    assert parse_ini(out)["DEFAULT"]["kept"] == ["yes"]
    found = find_overrides(tmp_path, "nova", "nova-api", "node2")
    out = render_and_merge(base, found, {})
    assert parse_ini(out)["DEFAULT"]["source"] == ["config/nova/nova-api.conf"]
    assert render_and_merge(base, [], {}) == "[DEFAULT]\nsource = generated\nkept = yes\n"
    assert base == {"DEFAULT": {"source": "generated", "kept": "yes"}}  # not mutated


def test_render_and_merge_renders_overrides_and_names_a_broken_one(tmp_path):
    make(tmp_path, "config/nova.conf")
    broken = tmp_path / "config" / "nova" / "nova-api.conf"
    broken.parent.mkdir(parents=True)
    broken.write_text("[DEFAULT]\nhost = {{ kolla_internal_fqdn }}\n")
    out = render_and_merge({"DEFAULT": {"host": "generated"}},
                           [tmp_path / "config" / "nova.conf", broken], {"kolla_internal_fqdn": "cloud"})
    assert parse_ini(out)["DEFAULT"] == {"host": ["cloud"], "source": ["config/nova.conf"]}
    broken.write_text("[DEFAULT]\nbroken\n")
    with pytest.raises(ConfigError, match=f"{broken}:2"):
        render_and_merge({"DEFAULT": {}}, [broken], {})


# --- config as data -----------------------------------------------------------

def test_ini_data_writes_bools_numbers_and_lists_and_skips_none():
    conf = {"DEFAULT": {"debug": False, "workers": 4, "ratio": 1.5, "unset": None,
                        "host": ["a", "b"], "name": "x"},
            "empty": {}}
    assert ini_data(conf) == {"DEFAULT": {"debug": ["false"], "workers": ["4"], "ratio": ["1.5"],
                                          "host": ["a", "b"], "name": ["x"]},
                              "empty": {}}
    text = render_ini(conf)
    assert text == ("[DEFAULT]\ndebug = false\nworkers = 4\nratio = 1.5\nhost = a\nhost = b\nname = x\n\n"
                    "[empty]\n")
    assert parse_ini(text) == ini_data(conf)


def test_ini_data_round_trips_values_that_need_quoting():
    conf = {"s": {"q": "'quoted'", "multi": "first\nsecond"}}
    assert parse_ini(render_ini(conf)) == ini_data(conf)


def test_declared_oslo_overrides_follow_kolla_ansible_lookup_order(tmp_path):
    # kolla-ansible's order: global.conf, <project>.conf, <project>/<service>.conf,
    # <project>/<host>/<project>.conf, <project>/<host>/<service>.conf
    make(tmp_path, "config/nova/node1/nova-api.conf", "config/global.conf",
         "config/nova/nova-api.conf", "config/nova.conf", "config/nova/node1/nova.conf",
         "config/nova/node2/nova-api.conf", "config/keystone.conf")
    ctx = PlanContext(host="node1", variables={}, passwords={}, configdir=tmp_path,
                      config_root=tmp_path / "out", service=services.get("nova"), users=services.users())
    found = ctx.overrides("nova-api")
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "config/global.conf", "config/nova.conf", "config/nova/nova-api.conf",
        "config/nova/node1/nova.conf", "config/nova/node1/nova-api.conf"]
    assert ctx.used_overrides == set(found)
    # a service that declares no override patterns reads none, even global.conf
    make(tmp_path, "config/memcached.conf")
    bare = PlanContext(host="node1", variables={}, passwords={}, configdir=tmp_path,
                       config_root=tmp_path / "out", service=services.get("memcached"),
                       users=services.users())
    assert bare.overrides("memcached") == []
    # MariaDB's galera.cnf must not pick up global.conf (an oslo.config file)
    make(tmp_path, "config/galera.cnf")
    galera = PlanContext(host="node1", variables={}, passwords={}, configdir=tmp_path,
                         config_root=tmp_path / "out", service=services.get("mariadb"),
                         users=services.users())
    assert galera.overrides("mariadb") == [tmp_path / "config" / "galera.cnf"]


# --- rendering --------------------------------------------------------------

def test_render_override_uses_variables(tmp_path):
    path = tmp_path / "nova.conf"
    path.write_text("[DEFAULT]\nhost = {{ kolla_internal_fqdn }}\n"
                    "{% if enable_debug | bool %}debug = True\n{% endif %}")
    out = render_override(path, {"kolla_internal_fqdn": "cloud", "enable_debug": "yes"})
    assert out == "[DEFAULT]\nhost = cloud\ndebug = True\n"


def test_render_override_undefined_names_file(tmp_path):
    path = tmp_path / "nova.conf"
    path.write_text("[DEFAULT]\nhost = {{ no_such }}\n")
    with pytest.raises(ConfigError) as exc:
        render_override(path, {})
    assert str(path) in str(exc.value) and "no_such" in str(exc.value)


def test_render_override_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "nova.conf"
    path.write_text("[DEFAULT]\nhost = {{ oops\n")
    with pytest.raises(ConfigError, match=f"{path}:2"):
        render_override(path, {})


def test_render_override_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="missing.conf"):
        render_override(tmp_path / "missing.conf", {})


# --- unused overrides -------------------------------------------------------

def test_unused_overrides_lists_files_nobody_read(tmp_path):
    make(tmp_path, "config/global.conf", "config/nova.conf", "config/nova/nova_api.conf",
         "config/nova/policy.yaml", "config/.hidden.conf", "config/nova/nova.conf~")
    used = set(find_overrides(tmp_path, "nova", "nova-api", "node1"))
    unused = unused_overrides(tmp_path, used)
    assert [p.relative_to(tmp_path).as_posix() for p in unused] == [
        "config/nova/nova_api.conf", "config/nova/policy.yaml"]


def test_unused_overrides_without_config_dir(tmp_path):
    assert unused_overrides(tmp_path, set()) == []

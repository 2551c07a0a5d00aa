"""globals.yml loading: defaults, typing, templates, warnings and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackyard.deploy import schema, services
from stackyard.deploy.config import enabled_services, load_globals
from stackyard.deploy.templating import to_bool
from stackyard.errors import ConfigError


def write_globals(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "globals.yml"
    path.write_text(text)
    return path


# --- schema -----------------------------------------------------------------

def test_every_service_has_an_enable_flag_and_known_dependencies():
    order = list(services.ALL)
    assert order, "no service was discovered"
    for name, svc in services.ALL.items():
        assert svc.name == name
        assert svc.enable_flag == f"enable_{name}"
        assert schema.OPTIONS[svc.enable_flag].type is bool
        for dep in (*svc.requires, *svc.after):
            if dep not in services.ALL:
                assert dep in svc.after, f"{name} requires unknown service {dep}"
                continue
            # deploy order: dependencies come first
            assert order.index(dep) < order.index(name), (name, dep)


def test_default_ports_stay_out_of_the_ephemeral_range():
    ports = {n: o.default for n, o in schema.OPTIONS.items()
             if n.endswith("_port") and not isinstance(o.default, str)}  # not derived ones
    # service modules' ports are in the table too, with kolla-ansible's defaults
    assert ports["database_port"] == 3306
    assert ports["rabbitmq_port"] == 5672
    assert ports["keystone_public_port"] == 5000
    assert all(0 < p < 32768 for p in ports.values()), ports


def test_every_service_port_is_a_known_int_option():
    for port in services.ports(services.ALL.values()):
        assert schema.OPTIONS[port.option].type is int, port


def test_removed_unused_options_are_unknown_keys(tmp_path):
    # accepted-but-unused keys are not in the table: setting one warns like any unknown key
    write_globals(tmp_path, "rabbitmq_management_port: 15672\nrabbitmq_user: openstack\n")
    _, warnings = load_globals(tmp_path)
    assert any("unknown key 'rabbitmq_management_port'" in w for w in warnings), warnings
    assert any("unknown key 'rabbitmq_user'" in w for w in warnings), warnings


def test_defaults_have_their_declared_type_or_are_templates():
    for opt in schema.OPTIONS.values():
        assert isinstance(opt.default, opt.type) or "{{" in str(opt.default), opt.name


def test_defaults_returns_copies():
    a = schema.defaults()
    a["multiple_regions_names"].append("x")
    assert schema.defaults()["multiple_regions_names"] == ["{{ openstack_region_name }}"]


# --- defaults and layering --------------------------------------------------

def test_missing_globals_gives_rendered_defaults(tmp_path):
    variables, warnings = load_globals(tmp_path)
    assert warnings == []
    assert variables["kolla_base_distro"] == "debian"
    assert variables["openstack_release"] == "2025.1"
    assert variables["openstack_tag"] == "2025.1"
    assert variables["kolla_internal_fqdn"] == "127.0.0.1"
    assert variables["kolla_external_vip_address"] == "127.0.0.1"
    assert variables["api_interface"] == variables["network_interface"]
    assert variables["node_config_directory"] == "/etc/kolla"
    assert variables["docker_namespace"] == "stackyard"
    assert variables["multiple_regions_names"] == ["RegionOne"]
    # kolla-ansible's enable_openstack_core (yes) brings Heat
    assert variables["enable_openstack_core"] is True and variables["enable_heat"] is True
    assert enabled_services(variables) == ["cron", "mariadb", "memcached", "rabbitmq",
                                           "keystone", "heat"]


def test_empty_or_comment_only_file_is_all_defaults(tmp_path):
    write_globals(tmp_path, "# nothing here\n")
    variables, warnings = load_globals(tmp_path)
    assert variables["openstack_release"] == "2025.1" and warnings == []


def test_file_overrides_defaults_and_derived_values_follow(tmp_path):
    write_globals(tmp_path, 'openstack_release: "2024.2"\n'
                            "kolla_internal_vip_address: 10.0.0.10\n"
                            "network_interface: ens3\n")
    variables, _ = load_globals(tmp_path)
    assert variables["openstack_tag"] == "2024.2"
    assert variables["kolla_internal_fqdn"] == "10.0.0.10"
    assert variables["kolla_external_fqdn"] == "10.0.0.10"
    assert variables["api_interface"] == "ens3"


def test_extra_vars_win_over_file(tmp_path):
    write_globals(tmp_path, "openstack_tag: from-file\n")
    variables, _ = load_globals(tmp_path, {"openstack_tag": "from-cli"})
    assert variables["openstack_tag"] == "from-cli"


def test_globals_d_files_merge_after_globals_yml_in_name_order(tmp_path):
    write_globals(tmp_path, "openstack_tag: from-globals\nnetwork_interface: eth0\ndatabase_port: 3306\n")
    d = tmp_path / "globals.d"
    d.mkdir()
    (d / "20-tag.yml").write_text("openstack_tag: from-20\n")
    (d / "10-tag.yml").write_text("openstack_tag: from-10\nnetwork_interface: ens4\n")
    (d / "30-ignored.yaml").write_text("database_port: 1\n")
    variables, warnings = load_globals(tmp_path)
    assert variables["openstack_tag"] == "from-20"          # 20- is read after 10-
    assert variables["network_interface"] == "ens4"         # globals.d wins over globals.yml
    assert variables["api_interface"] == "ens4"             # and what derives from it follows
    assert variables["database_port"] == 3306               # *.yaml is not read ...
    assert any("30-ignored.yaml: not read" in w for w in warnings)  # ... and says so
    # -e still wins over all files
    assert load_globals(tmp_path, {"openstack_tag": "cli"})[0]["openstack_tag"] == "cli"


def test_an_error_in_a_globals_d_file_names_that_file_and_line(tmp_path):
    write_globals(tmp_path, "enable_keystone: yes\n")
    d = tmp_path / "globals.d"
    d.mkdir()
    (d / "site.yml").write_text("# site\n\nenable_keystone: maybe\n")
    with pytest.raises(ConfigError) as exc:
        load_globals(tmp_path)
    assert f"{d / 'site.yml'}:3" in str(exc.value) and "enable_keystone" in str(exc.value)


def test_explicit_value_beats_derived_default(tmp_path):
    write_globals(tmp_path, "kolla_internal_vip_address: 10.0.0.10\n"
                            "kolla_internal_fqdn: cloud.example.com\n")
    variables, _ = load_globals(tmp_path)
    assert variables["kolla_internal_fqdn"] == "cloud.example.com"


# --- types ------------------------------------------------------------------

@pytest.mark.parametrize("raw,expected", [
    ("yes", True), ("no", False), ("true", True), ("False", False),
    ('"yes"', True), ('"off"', False), ('"On"', True), ("1", True), ("0", False),
])
def test_boolean_spellings(tmp_path, raw, expected):
    write_globals(tmp_path, f"openstack_logging_debug: {raw}\n")
    variables, _ = load_globals(tmp_path)
    assert variables["openstack_logging_debug"] is expected


def test_numeric_strings_are_ints(tmp_path):
    write_globals(tmp_path, 'fernet_token_expiry: "3600"\n')
    variables, _ = load_globals(tmp_path, {"database_port": "3307"})
    assert variables["fernet_token_expiry"] == 3600
    assert variables["database_port"] == 3307


def test_wrong_bool_names_file_line_key_and_type(tmp_path):
    path = write_globals(tmp_path, "# comment\nenable_keystone: maybe\n")
    with pytest.raises(ConfigError) as exc:
        load_globals(tmp_path)
    msg = str(exc.value)
    assert f"{path}:2" in msg and "enable_keystone" in msg and "boolean" in msg


def test_wrong_int_names_file_and_key(tmp_path):
    path = write_globals(tmp_path, "database_port: three\n")
    with pytest.raises(ConfigError) as exc:
        load_globals(tmp_path)
    assert str(path) in str(exc.value) and "database_port" in str(exc.value)
    assert "integer" in str(exc.value)


def test_bool_is_not_an_int(tmp_path):
    write_globals(tmp_path, "database_port: yes\n")
    with pytest.raises(ConfigError, match="database_port"):
        load_globals(tmp_path)


def test_wrong_list_and_dict(tmp_path):
    write_globals(tmp_path, "multiple_regions_names: RegionOne\n")
    with pytest.raises(ConfigError, match="multiple_regions_names.*a list"):
        load_globals(tmp_path)
    write_globals(tmp_path, "default_container_dimensions: [1]\n")
    with pytest.raises(ConfigError, match="default_container_dimensions.*a mapping"):
        load_globals(tmp_path)


def test_string_given_a_mapping_is_an_error(tmp_path):
    write_globals(tmp_path, "network_interface: {a: 1}\n")
    with pytest.raises(ConfigError, match="network_interface.*a string"):
        load_globals(tmp_path)


def test_float_release_is_accepted_with_a_warning(tmp_path):
    write_globals(tmp_path, "openstack_release: 2024.2\n")
    variables, warnings = load_globals(tmp_path)
    assert variables["openstack_release"] == "2024.2"
    assert any("openstack_release" in w and "quote" in w for w in warnings)


def test_empty_string_option_is_empty_string(tmp_path):
    write_globals(tmp_path, "docker_registry:\n")
    variables, _ = load_globals(tmp_path)
    assert variables["docker_registry"] == ""


@pytest.mark.parametrize("engine", ["rkt", "podman"])
def test_choices_are_enforced(tmp_path, engine):
    # podman is refused up front (not implemented) rather than failing at the first container
    path = write_globals(tmp_path, f"kolla_container_engine: {engine}\n")
    with pytest.raises(ConfigError) as exc:
        load_globals(tmp_path)
    msg = str(exc.value)
    assert f"{path}:1" in msg and "kolla_container_engine" in msg
    assert "one of docker;" in msg and repr(engine) in msg


def test_docker_engine_is_accepted(tmp_path):
    write_globals(tmp_path, "kolla_container_engine: docker\n")
    variables, warnings = load_globals(tmp_path)
    assert variables["kolla_container_engine"] == "docker" and warnings == []


def test_extra_vars_type_error_names_extra_vars():
    with pytest.raises(ConfigError, match="extra vars.*enable_cron"):
        load_globals(Path("/nonexistent"), {"enable_cron": "perhaps"})


# --- file errors ------------------------------------------------------------

def test_bad_yaml_names_file_and_line(tmp_path):
    path = write_globals(tmp_path, "a: 1\nb: [unclosed\nc: 3\n")
    with pytest.raises(ConfigError) as exc:
        load_globals(tmp_path)
    assert str(path) in str(exc.value)
    assert "invalid YAML" in str(exc.value)
    assert f"{path}:" in str(exc.value)


def test_non_mapping_is_an_error(tmp_path):
    path = write_globals(tmp_path, "- a\n- b\n")
    with pytest.raises(ConfigError) as exc:
        load_globals(tmp_path)
    assert str(path) in str(exc.value) and "mapping" in str(exc.value)


def test_non_string_key_is_an_error(tmp_path):
    write_globals(tmp_path, "1: a\n")
    with pytest.raises(ConfigError, match="key 1"):
        load_globals(tmp_path)


# --- warnings ---------------------------------------------------------------

def test_unknown_key_warns_with_nearest_known_key(tmp_path):
    write_globals(tmp_path, "enable_keystonee: yes\n")
    variables, warnings = load_globals(tmp_path)
    assert len(warnings) == 1
    assert ("globals.yml: unknown key 'enable_keystonee' "
            "(did you mean 'enable_keystone'?)") in warnings[0]
    # kept, so override templates can use it
    assert variables["enable_keystonee"] is True


def test_unknown_key_without_close_match(tmp_path):
    write_globals(tmp_path, "zzz_totally_custom: 1\n")
    _, warnings = load_globals(tmp_path)
    assert "unknown key 'zzz_totally_custom'" in warnings[0]
    assert "did you mean" not in warnings[0]


def test_unknown_extra_var_warns(tmp_path):
    _, warnings = load_globals(tmp_path, {"opnestack_release": "x"})
    assert "extra vars: unknown key 'opnestack_release'" in warnings[0]
    assert "openstack_release" in warnings[0]


def test_duplicate_key_warns(tmp_path):
    write_globals(tmp_path, "docker_namespace: a\ndocker_namespace: b\n")
    variables, warnings = load_globals(tmp_path)
    assert variables["docker_namespace"] == "b"
    assert any("duplicate key 'docker_namespace'" in w for w in warnings)


# --- templates --------------------------------------------------------------

def test_templates_render_against_other_variables(tmp_path):
    write_globals(tmp_path, 'docker_namespace: "ns-{{ openstack_region_name }}"\n'
                            'openstack_region_name: north\n'
                            'my_url: "http://{{ kolla_internal_fqdn }}:{{ keystone_public_port }}"\n')
    variables, _ = load_globals(tmp_path)
    assert variables["docker_namespace"] == "ns-north"
    assert variables["my_url"] == "http://127.0.0.1:5000"


def test_template_chains_render_in_dependency_order(tmp_path):
    write_globals(tmp_path, 'a: "{{ b }}-a"\nb: "{{ c }}-b"\nc: "{{ openstack_tag }}"\n'
                            'openstack_release: "2023.2"\n')
    variables, _ = load_globals(tmp_path)
    assert variables["a"] == "2023.2-b-a"


def test_templated_bool_and_int_are_coerced(tmp_path):
    write_globals(tmp_path, 'enable_horizon: "{{ enable_keystone | bool }}"\n'
                            'horizon_port: "{{ keystone_public_port + 1 }}"\n'
                            'openstack_logging_debug: "{{ \'yes\' }}"\n')
    variables, _ = load_globals(tmp_path)
    assert variables["enable_horizon"] is True
    assert variables["horizon_port"] == 5001
    assert variables["openstack_logging_debug"] is True


def test_templated_list_is_a_list(tmp_path):
    write_globals(tmp_path, 'multiple_regions_names: "{{ [openstack_region_name] }}"\n')
    variables, _ = load_globals(tmp_path)
    assert variables["multiple_regions_names"] == ["RegionOne"]


def test_template_with_undefined_variable_names_key(tmp_path):
    path = write_globals(tmp_path, 'openstack_tag: "{{ no_such_var }}"\n')
    with pytest.raises(ConfigError) as exc:
        load_globals(tmp_path)
    msg = str(exc.value)
    assert str(path) in msg and "openstack_tag" in msg and "no_such_var" in msg


def test_template_cycle_is_an_error(tmp_path):
    write_globals(tmp_path, 'a: "{{ b }}"\nb: "{{ a }}"\n')
    with pytest.raises(ConfigError, match="cycle: a, b"):
        load_globals(tmp_path)


def test_template_syntax_error_names_key(tmp_path):
    write_globals(tmp_path, 'openstack_tag: "{{ oops "\n')
    with pytest.raises(ConfigError, match="openstack_tag"):
        load_globals(tmp_path)


def test_rendered_value_of_wrong_type_names_key(tmp_path):
    write_globals(tmp_path, 'database_port: "{{ kolla_base_distro }}"\n')
    with pytest.raises(ConfigError, match="database_port.*integer"):
        load_globals(tmp_path)


# --- service dependencies -----------------------------------------------------

def test_enabled_service_with_disabled_dependency_names_both(tmp_path):
    path = write_globals(tmp_path, "enable_memcached: no\n")
    with pytest.raises(ConfigError) as exc:
        load_globals(tmp_path)
    msg = str(exc.value)
    assert "keystone" in msg and "memcached" in msg and str(path) in msg


def test_nova_needs_placement_and_glance(tmp_path):
    write_globals(tmp_path, "enable_nova: yes\nenable_glance: yes\n")
    with pytest.raises(ConfigError) as exc:
        load_globals(tmp_path)
    assert "'nova' needs 'placement'" in str(exc.value)
    assert "glance" not in str(exc.value).split("needs")[1]


def test_full_core_cloud_is_valid(tmp_path):
    write_globals(tmp_path, "".join(f"{s.enable_flag}: yes\n" for s in services.ALL.values()))
    variables, warnings = load_globals(tmp_path)
    assert enabled_services(variables) == list(services.ALL)
    assert warnings == []


def test_disabling_everything_is_valid(tmp_path):
    write_globals(tmp_path, "".join(f"{s.enable_flag}: no\n" for s in services.ALL.values()))
    variables, _ = load_globals(tmp_path)
    assert enabled_services(variables) == []


def test_to_bool_filter_matches_ansible():
    assert to_bool("Yes") and to_bool(True) and to_bool(1)
    assert not to_bool("no") and not to_bool("whatever") and not to_bool(None)


def test_unrelated_kolla_key_gets_no_misleading_suggestion(tmp_path):
    write_globals(tmp_path, "enable_prometheus: no\n")
    _, warnings = load_globals(tmp_path)
    assert "unknown key 'enable_prometheus'" in warnings[0]
    assert "did you mean" not in warnings[0]


@pytest.mark.parametrize("key, value, reason", [
    ("docker_registry_username", "alice", "registry authentication"),
    ("default_container_dimensions", {"mem_limit": "1g"}, "resource limits"),
    ("multiple_regions_names", ["RegionOne", "RegionTwo"], "multi-region"),
    ("keystone_internal_port", 5001, "one port"),
    ("kolla_base_distro", "ubuntu", "Debian images only"),
])
def test_kolla_keys_stackyard_does_not_implement_are_refused(tmp_path, key, value, reason) -> None:
    import yaml

    (tmp_path / "globals.yml").write_text(yaml.safe_dump({key: value}))
    with pytest.raises(ConfigError, match=reason) as exc:
        load_globals(tmp_path)
    assert "globals.yml:1" in str(exc.value) and key in str(exc.value)


def test_unsupported_keys_accept_their_default_even_when_derived(tmp_path) -> None:
    (tmp_path / "globals.yml").write_text(
        "keystone_public_port: 5001\nkeystone_internal_port: 5001\nopenstack_region_name: North\n"
        "multiple_regions_names: [North]\ndocker_registry_username: ''\n")
    variables, _ = load_globals(tmp_path)
    assert variables["keystone_internal_port"] == 5001 and variables["multiple_regions_names"] == ["North"]

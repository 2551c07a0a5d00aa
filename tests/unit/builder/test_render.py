"""Rendering: StrictUndefined, FROM parsing, layered docker dirs, overrides."""

from __future__ import annotations

import pytest

from stackyard.imagebuild import catalog
from stackyard.imagebuild.catalog import BUILTIN_IMAGES_DIR, parse_from, render_all
from stackyard.errors import ConfigError, TemplateError


def child_of(parent: str, body: str = "") -> str:
    """The smallest template that builds FROM one of our images."""
    return "FROM {{ image_ref('%s') }}\n%s" % (parent, body)

CORE = {"base", "openstack-base", "keystone", "mariadb-server", "memcached", "rabbitmq", "cron"}


def test_builtin_tree_renders_with_parents_from_from_lines(config):
    images = render_all(config())
    assert CORE <= set(images)
    assert images["base"].parents == [] and images["base"].external == ["debian:trixie"]
    assert images["openstack-base"].parents == ["base"]
    assert images["keystone"].parents == ["openstack-base"]
    assert images["keystone"].from_refs == ["stackyard/openstack-base:2025.1"]
    # context files: hooks for keystone, runtime-contract scripts for base
    assert "hooks/bootstrap" in images["keystone"].files
    assert "container/set_configs.py" in images["base"].files
    assert "container/start.py" in images["base"].files


def test_base_tag_selects_release_and_tag(config):
    images = render_all(config(base_tag="bookworm"))
    assert images["base"].external == ["debian:bookworm"]
    assert images["keystone"].from_refs == ["stackyard/openstack-base:zed"]
    assert 'org.openstack.release="zed"' in images["keystone"].dockerfile


def test_registry_and_namespace_in_from(config):
    images = render_all(config(registry="127.0.0.1:5000", namespace="ns", tag="t1"))
    assert images["keystone"].from_refs == ["127.0.0.1:5000/ns/openstack-base:t1"]
    assert images["keystone"].parents == ["openstack-base"]


def test_strict_undefined_names_file_and_image(config, tree):
    dd = tree({"oops/Dockerfile.j2": child_of("base", "RUN echo {{ no_such_variable }}\n")})
    with pytest.raises(TemplateError) as err:
        render_all(config(docker_dirs=[dd]))
    msg = str(err.value)
    assert str(dd / "oops" / "Dockerfile.j2") in msg
    assert "no_such_variable" in msg
    assert "image 'oops'" in msg
    assert "\n" not in msg


def test_syntax_error_names_file_and_line(config, tree):
    dd = tree({"oops/Dockerfile.j2": child_of("base", "\n{% if %}\n")})
    with pytest.raises(TemplateError) as err:
        render_all(config(docker_dirs=[dd]))
    assert "oops/Dockerfile.j2:3:" in str(err.value)


def test_no_from_line_is_an_error(config, tree):
    dd = tree({"nofrom/Dockerfile.j2": "RUN true\n"})
    with pytest.raises(TemplateError, match="no FROM line.*nofrom"):
        render_all(config(docker_dirs=[dd]))


@pytest.mark.parametrize(
    "text, refs",
    [
        ("FROM debian:trixie\nRUN x\n", ["debian:trixie"]),
        ("from debian:trixie\n", ["debian:trixie"]),
        ("FROM --platform=linux/amd64 stackyard/base:2025.1\n", ["stackyard/base:2025.1"]),
        # multi-stage: a later FROM naming an earlier stage is not a parent
        ("FROM stackyard/base:2025.1 AS builder\nRUN make\n"
         "FROM builder AS test\nRUN test\n"
         "FROM stackyard/openstack-base:2025.1\nCOPY --from=builder /a /a\n",
         ["stackyard/base:2025.1", "stackyard/openstack-base:2025.1"]),
        ("FROM stackyard/base:2025.1 as build\nFROM build\n", ["stackyard/base:2025.1"]),
        ("# FROM not-a-from:1\nRUN echo FROM nothing\nFROM a:1\n", ["a:1"]),
    ],
)
def test_parse_from(text, refs):
    assert parse_from(text) == refs


def test_multi_stage_image_parents(config, tree):
    dd = tree({"multi/Dockerfile.j2": (
        "FROM {{ image_ref('base') }} AS build\nRUN true\n"
        "FROM debian:trixie AS plain\n"
        "FROM build\n"
        "FROM {{ image_ref('openstack-base') }}\nCOPY --from=build /x /x\n")})
    img = render_all(config(docker_dirs=[dd]))["multi"]
    assert img.parents == ["base", "openstack-base"]
    assert img.external == ["debian:trixie"]


# ----------------------------------------------------------------- layering
def test_later_tree_file_replaces_ours(config, tree):
    dd = tree({"keystone/hooks/bootstrap": "#!/bin/sh\necho mine\n"})
    images = render_all(config(docker_dirs=[dd]))
    assert images["keystone"].files["hooks/bootstrap"] == dd / "keystone" / "hooks" / "bootstrap"
    # the other hooks still come from our tree
    assert images["keystone"].files["hooks/upgrade"] == BUILTIN_IMAGES_DIR / "keystone" / "hooks" / "upgrade"
    assert images["keystone"].template == BUILTIN_IMAGES_DIR / "keystone" / "Dockerfile.j2"


def test_later_tree_template_replaces_ours(config, tree):
    dd = tree({"memcached/Dockerfile.j2": child_of("base", "RUN echo replaced-memcached\n")})
    images = render_all(config(docker_dirs=[dd]))
    assert "replaced-memcached" in images["memcached"].dockerfile
    assert "apt-get install" not in images["memcached"].dockerfile


def test_last_docker_dir_wins(config, tree):
    one = tree({"extra/Dockerfile.j2": child_of("base", "RUN echo one\n")})
    two = tree({"extra/Dockerfile.j2": child_of("base", "RUN echo two\n")})
    assert "echo two" in render_all(config(docker_dirs=[one, two]))["extra"].dockerfile
    assert "echo one" in render_all(config(docker_dirs=[two, one]))["extra"].dockerfile


def test_new_folder_adds_an_image(config, tree):
    dd = tree({
        "extra/Dockerfile.j2": child_of("keystone", "COPY data.txt /data.txt\n"),
        "extra/data.txt": "hello\n",
        "notanimage/README": "no template here\n",
    })
    images = render_all(config(docker_dirs=[dd]))
    assert images["extra"].parents == ["keystone"]
    assert images["extra"].files == {"data.txt": dd / "extra" / "data.txt"}
    assert "notanimage" not in images


def test_macros_override(config, tree):
    ours = (BUILTIN_IMAGES_DIR / "macros.j2").read_text()
    mine = ours.replace('org.opencontainers.image.vendor="stackyard"',
                        'org.opencontainers.image.vendor="acme"')
    assert mine != ours
    dd = tree({"macros.j2": mine})
    images = render_all(config(docker_dirs=[dd]))
    for name in CORE:
        assert 'vendor="acme"' in images[name].dockerfile, name
    assert 'vendor="stackyard"' in render_all(config())["keystone"].dockerfile


def test_missing_docker_dir_is_config_error(config, tmp_path):
    with pytest.raises(ConfigError, match="not a directory"):
        render_all(config(docker_dirs=[tmp_path / "nope"]))


# ----------------------------------------------------------------- package lists
def _install_line(dockerfile: str) -> str:
    return next(l for l in dockerfile.splitlines() if "apt-get install" in l)


def test_packages_append_remove_override_via_template_vars(config):
    images = render_all(config(template_vars={
        "keystone_packages_append": ["less", "python3-keystone"],
        "cron_packages_remove": ["logrotate"],
        "memcached_packages_override": ["memcached", "netcat-openbsd"],
    }))
    ks = _install_line(images["keystone"].dockerfile)
    assert ks.endswith("python3-keystone less \\")
    assert ks.count("python3-keystone") == 1
    cron = _install_line(images["cron"].dockerfile)
    assert " cron " in cron + " " and "logrotate" not in cron
    mc = _install_line(images["memcached"].dockerfile)
    assert "memcached netcat-openbsd" in mc


def test_packages_variable_must_be_a_list(config):
    with pytest.raises(TemplateError, match="keystone_packages_append must be a list.*image 'keystone'"):
        render_all(config(template_vars={"keystone_packages_append": "less"}))


def test_removing_every_package_drops_the_run_line(config):
    images = render_all(config(template_vars={"cron_packages_override": ["x"],
                                              "cron_packages_remove": ["x"]}))
    assert "apt-get install" not in images["cron"].dockerfile


# ----------------------------------------------------------------- --template-override
OVERRIDE = """\
{% extends parent_template %}
{% set keystone_packages_append = ['less'] %}
{% block keystone_header %}
RUN echo keystone-header-marker
{% endblock %}
{% block keystone_footer %}
RUN echo keystone-footer-marker
{% endblock %}
"""


def test_template_override_blocks_and_set(config, tree):
    dd = tree({"override.j2": OVERRIDE})
    images = render_all(config(template_overrides=[dd / "override.j2"]))
    ks = images["keystone"].dockerfile
    lines = ks.splitlines()
    assert "RUN echo keystone-header-marker" in lines
    assert "RUN echo keystone-footer-marker" in lines
    # header right after the labels, footer right before USER
    assert lines.index("RUN echo keystone-header-marker") < lines.index(_install_line(ks))
    assert lines.index("RUN echo keystone-footer-marker") < lines.index("USER keystone")
    assert _install_line(ks).endswith("python3-keystone less \\")
    # other images are untouched
    plain = render_all(config())
    for name in CORE - {"keystone"}:
        assert images[name].dockerfile == plain[name].dockerfile, name


def test_two_template_overrides_chain(config, tree):
    dd = tree({
        "one.j2": OVERRIDE,
        "two.j2": "{% extends parent_template %}\n"
                  "{% block memcached_footer %}RUN echo second-override\n{% endblock %}\n",
    })
    images = render_all(config(template_overrides=[dd / "one.j2", dd / "two.j2"]))
    assert "keystone-footer-marker" in images["keystone"].dockerfile
    assert "less" in _install_line(images["keystone"].dockerfile)
    assert "RUN echo second-override" in images["memcached"].dockerfile


def test_override_can_call_super(config, tree):
    dd = tree({"o.j2": "{% extends parent_template %}\n"
                       "{% block cron_footer %}{{ super() }}RUN echo after\n{% endblock %}\n"})
    assert "RUN echo after" in render_all(config(template_overrides=[dd / "o.j2"]))["cron"].dockerfile


def test_override_without_extends_is_an_error(config, tree):
    dd = tree({"o.j2": "{% block keystone_footer %}RUN x{% endblock %}\n"})
    with pytest.raises(TemplateError, match="must '{% extends parent_template %}'"):
        render_all(config(template_overrides=[dd / "o.j2"]))


def test_override_syntax_error_names_override_file(config, tree):
    dd = tree({"o.j2": "{% extends parent_template %}\n{% block keystone_footer %}\n"})
    with pytest.raises(TemplateError) as err:
        render_all(config(template_overrides=[dd / "o.j2"]))
    assert str(dd / "o.j2") in str(err.value)


def test_unreadable_override_is_config_error(config, tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        render_all(config(template_overrides=[tmp_path / "missing.j2"]))


def test_block_prefix():
    assert catalog.block_name("openstack-base") == "openstack_base"
    assert catalog.block_name("mariadb-server") == "mariadb_server"


@pytest.mark.parametrize("name", sorted(CORE))
def test_every_builtin_image_offers_blocks_and_package_variables(name):
    """Overrides rely on <image>_header/_footer blocks and customizable('<image>_packages')."""
    text = (BUILTIN_IMAGES_DIR / name / "Dockerfile.j2").read_text()
    prefix = catalog.block_name(name)
    assert "{%% block %s_header %%}" % prefix in text
    assert "{%% block %s_footer %%}" % prefix in text
    assert "'%s_packages')" % prefix in text


def test_header_and_footer_blocks_of_every_image(config, tree):
    blocks = "".join("{%% block %s_header %%}RUN echo h-%s\n{%% endblock %%}"
                     "{%% block %s_footer %%}RUN echo f-%s\n{%% endblock %%}"
                     % (catalog.block_name(n), n, catalog.block_name(n), n) for n in sorted(CORE))
    dd = tree({"o.j2": "{% extends parent_template %}\n" + blocks})
    images = render_all(config(template_overrides=[dd / "o.j2"]))
    for name in CORE:
        lines = images[name].dockerfile.splitlines()
        assert f"RUN echo h-{name}" in lines and f"RUN echo f-{name}" in lines
        assert lines.index(f"RUN echo h-{name}") < lines.index(f"RUN echo f-{name}")
        assert sum(l.startswith("RUN echo h-") for l in lines) == 1, name


# ----------------------------------------------------------------- service users
def _useradd_lines(dockerfile: str) -> list[str]:
    """The useradd commands of the RUN line, each ending in the user name and ';'."""
    return [l.strip().removesuffix("\\").strip() for l in dockerfile.splitlines() if "useradd" in l]


def test_base_creates_every_user_of_the_table(config, service_users):
    base = render_all(config())["base"].dockerfile
    lines = _useradd_lines(base)
    assert len(lines) == len(service_users)
    # kolla first: the other users join its group
    assert lines[0].endswith(" kolla;")
    for name, u in service_users.items():
        line = next(l for l in lines if l.endswith(f" {name};"))
        assert f"--uid {u['uid']} --gid {u['gid']} --home-dir {u['home']} " in line
        assert ("--groups kolla " in line) == bool(u["groups"])


def test_users_table_changes_the_base_image(config, service_users):
    service_users["nova"]["uid"] = 50000
    base = render_all(config(users=service_users))["base"].dockerfile
    assert "--uid 50000 " in base
    assert "--uid 42436 " not in base


def test_missing_user_fails_naming_user_and_image(config, service_users):
    del service_users["kolla"]
    with pytest.raises(TemplateError) as err:
        render_all(config(users=service_users))
    msg = str(err.value)
    assert "service user 'kolla' is not in the build's users table" in msg
    assert "image 'base'" in msg
    assert "\n" not in msg


def test_empty_users_table_fails(config):
    with pytest.raises(TemplateError, match=r"service user 'kolla'.*\(known: none\).*image 'base'"):
        render_all(config(users={}))


def test_custom_image_asking_for_an_unknown_user(config, tree):
    dd = tree({"svc/Dockerfile.j2": child_of("base", "USER {{ users['ghost'].uid }}\n")})
    with pytest.raises(TemplateError) as err:
        render_all(config(docker_dirs=[dd]))
    assert "service user 'ghost'" in str(err.value) and "image 'svc'" in str(err.value)
    assert str(dd / "svc" / "Dockerfile.j2") in str(err.value)


def test_custom_image_can_use_a_known_user(config, tree, service_users):
    dd = tree({"svc/Dockerfile.j2": child_of("base", "USER {{ users['nova'].uid }}\n")})
    assert f"USER {service_users['nova']['uid']}" in render_all(config(docker_dirs=[dd]))["svc"].dockerfile

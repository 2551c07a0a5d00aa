"""A new service is one module: every registry picks it up from its SERVICE record.

The test copies the stackyard package, drops one new module into
``deploy/services/`` and, in a fresh interpreter, checks that the schema,
passwords, inventory, build profiles, users, deploy order, databases,
RabbitMQ users, Keystone registrations, HAProxy frontends, prechecks ports and
overrides all know it, with no other file touched.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import stackyard

DEMO = textwrap.dedent('''
    """Demo: a made-up API service, declared like any other."""
    from stackyard.agent.model import Phase
    from stackyard.deploy.context import PlanContext, cfile
    from stackyard.deploy.options import Option
    from stackyard.deploy.services import common
    from stackyard.deploy.services.base import (
        OSLO_OVERRIDES, Database, Frontend, Group, Password, PasswordKind, Port, RabbitUser, Registration,
        Service, User,
    )


    def plan(ctx: PlanContext) -> Phase:
        port = int(ctx.variables["demo_api_port"])
        conf = {"DEFAULT": common.default_section(ctx, "demo", bind_port=port),
                "database": common.database_section(ctx, "demo", "demo_database_password", "demo")}
        ctx.add_ini("demo-api", "demo.conf", conf, owner="demo")
        ctx.add_config_json("demo-api", "demo-api", [cfile("demo.conf", "/etc/demo/demo.conf", "demo")])
        return Phase("demo", common.api_service_steps(ctx, name="demo", image="demo-api", config_dir="demo-api",
                                                      container="demo_api", port=port))


    SERVICE = Service(
        name="demo", summary="Demo (a test service).", requires=("keystone", "mariadb", "rabbitmq"),
        groups=(Group("demo", ("control",)), Group("demo-api", ("demo",))), placed_by=("demo-api",),
        images=("demo-api",),
        options=(Option("demo_api_port", int, 9876, "Demo API port."),),
        passwords=(Password("demo_database_password"), Password("demo_keystone_password"),
                   Password("demo_ssh_key", PasswordKind.SSH_KEY)),
        databases=(Database("demo", "demo", "demo_database_password"),),
        rabbitmq=RabbitUser("demo"),
        registrations=(Registration("demo", "demo-type", "demo_api_port", user="demo",
                                    password_key="demo_keystone_password"),),
        frontends=(Frontend("demo_api", "demo-api", "demo_api_port", check_path="/"),),
        users=(User("demo", 42499, "/var/lib/demo"),),
        ports=(Port("demo_api_port", "demo_api"),),
        project="demo", overrides=OSLO_OVERRIDES, plan=plan,
    )
''')

PROBE = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    import stackyard
    assert stackyard.__file__.startswith(sys.argv[1]), stackyard.__file__
    from stackyard.deploy import services, plan, ops, schema
    from stackyard.deploy.inventory import ALL_IN_ONE
    from stackyard.deploy.passwords import genpwd
    configdir = Path(sys.argv[2])
    genpwd(configdir / "passwords.yml")
    dep = plan.load(configdir)
    plan.make_plans(dep)
    p = dep.plans["localhost"]
    files = {f.path.split("/", 3)[-1] if False else f.path: f.content for f in p.files}
    def content(suffix):
        return next(c for path, c in files.items() if path.endswith(suffix))
    phase = next(ph for ph in p.phases if ph.name == "demo")
    print(json.dumps({
        "order": [s.name for s in services.ALL.values()],
        "options": [k for k in schema.OPTIONS if k == "enable_demo" or k.startswith("demo_")],
        "passwords": {k: v.kind.value for k, v in services.passwords().items() if "demo" in k},
        "users": services.users()["demo"].uid,
        "profiles": services.build_profiles()["core"],
        "inventory": "[demo-api:children]\\ndemo" in ALL_IN_ONE,
        "steps": [[str(s.kind), s.name] for s in phase.steps],
        "haproxy": content("haproxy/haproxy.cfg"),
        "definitions": json.loads(content("rabbitmq/definitions.json"))["vhosts"],
        "demo_conf": content("demo-api/demo.conf"),
        "ports": ops.host_checks(dep, "localhost").ports,
        "warnings": dep.warnings,
    }))
''')


def test_a_new_service_module_is_all_it_takes(tmp_path: Path) -> None:
    pkg = tmp_path / "src" / "stackyard"
    shutil.copytree(Path(stackyard.__file__).parent, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "deploy" / "services" / "demo.py").write_text(DEMO)
    configdir = tmp_path / "etc"
    (configdir / "config").mkdir(parents=True)
    (configdir / "globals.yml").write_text("enable_demo: true\nenable_loadbalancer: true\n")
    (configdir / "config" / "demo.conf").write_text("[DEFAULT]\nfrom_override = yes\n")
    proc = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "src"), str(configdir)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout)
    order = got["order"]
    assert order.index("demo") > max(order.index("keystone"), order.index("mariadb"), order.index("rabbitmq"))
    assert got["options"] == ["enable_demo", "demo_api_port"]
    assert got["passwords"] == {"demo_database_password": "plain", "demo_keystone_password": "plain",
                                "demo_ssh_key": "ssh_key"}
    assert got["users"] == 42499
    assert "demo-api" in got["profiles"]
    assert got["inventory"]
    assert got["steps"] == [["database", "demo"], ["job", "bootstrap_demo"], ["container", "demo_api"],
                            ["wait", "demo_api"], ["keystone_register", "demo"]]
    assert "listen demo_api" in got["haproxy"] and ":9876 check" in got["haproxy"]
    assert {"name": "demo"} in got["definitions"]
    assert "from_override = yes" in got["demo_conf"] and "bind_port = 9876" in got["demo_conf"]
    assert got["ports"]["9876"] == "demo_api"
    assert not [w for w in got["warnings"] if "demo.conf" in w]

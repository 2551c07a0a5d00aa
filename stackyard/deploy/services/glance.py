"""Glance: image API with the file store on a named volume that survives redeploys,
or (``glance_backend_ceph``) the RBD store on an external Ceph cluster.

With RBD, images live in ``ceph_glance_pool_name`` and Glance shows their
location (``show_image_direct_url``), so Nova and Cinder on the same cluster
make copy-on-write clones of raw images instead of copying them. Ceph's files
come from the operator, in kolla-ansible's layout: ``config/glance/ceph.conf``
and ``config/glance/ceph.client.<ceph_glance_user>.keyring``, installed into
``/etc/ceph``. The staging and tasks stores stay on the ``glance`` volume.
"""

from __future__ import annotations

from stackyard.agent.model import Phase
from stackyard.deploy.context import PlanContext, cfile
from stackyard.deploy.options import Option
from stackyard.deploy.services import common
from stackyard.deploy.services.base import (
    OSLO_OVERRIDES, Database, Frontend, Group, Password, Port, RabbitUser, Registration, Service, Upgrade,
    UpgradeJob, User,
)
from stackyard.errors import ConfigError

#: the store names of enabled_backends (kolla-ansible's: file:file, rbd:rbd)
FILE_STORE, RBD_STORE = "file", "rbd"


def stores(v: dict) -> list[str]:
    """The enabled stores, the default one first (RBD when both are on, as in kolla-ansible)."""
    out = [RBD_STORE] if v["glance_backend_ceph"] else []
    if v["glance_backend_file"]:
        out.append(FILE_STORE)
    if not out:
        raise ConfigError("enable_glance is true but no image store is enabled: glance_backend_file and "
                          "glance_backend_ceph are both false")
    return out


def store_sections(ctx: PlanContext, enabled: list[str]) -> dict:
    v = ctx.variables
    out: dict = {}
    if FILE_STORE in enabled:
        out[FILE_STORE] = {"filesystem_store_datadir": "/var/lib/glance/images/"}
    if RBD_STORE in enabled:
        out[RBD_STORE] = {"rbd_store_pool": v["ceph_glance_pool_name"], "rbd_store_user": v["ceph_glance_user"],
                          "rbd_store_ceph_conf": common.ceph_conf_path(ctx)}
    return out


def ceph_entries(ctx: PlanContext) -> list[dict]:
    """ceph.conf and the glance user's keyring from config/glance/, for /etc/ceph."""
    v = ctx.variables
    why = "glance_backend_ceph is true"
    conf = common.ceph_conf_text(ctx, (f"glance/{common.ceph_conf_name(ctx)}",), (), why)
    name, text, _key = common.ceph_keyring(ctx, (f"glance/{v['ceph_cluster']}.{v['ceph_glance_keyring']}",),
                                           v["ceph_glance_user"], f"{why} (Glance connects as "
                                           f"client.{v['ceph_glance_user']})")
    return common.add_ceph_files(ctx, "glance-api", "glance", conf, [(name, text)])


def plan(ctx: PlanContext) -> Phase:
    v = ctx.variables
    svc, port = "glance-api", int(v["glance_api_port"])
    enabled = stores(v)
    conf = {
        "DEFAULT": common.default_section(
            ctx, "glance", bind_host=v["api_interface_address"], bind_port=port, workers=v["glance_api_workers"],
            enabled_backends=",".join(f"{s}:{s}" for s in enabled),
            # the image's rbd:// location lets Nova and Cinder clone it (copy-on-write)
            show_image_direct_url=RBD_STORE in enabled),
        "glance_store": {"default_backend": enabled[0]},
        **store_sections(ctx, enabled),
        "os_glance_staging_store": {"filesystem_store_datadir": "/var/lib/glance/staging/"},
        "os_glance_tasks_store": {"filesystem_store_datadir": "/var/lib/glance/tasks/"},
        "database": common.database_section(ctx, "glance", "glance_database_password", "glance"),
        "keystone_authtoken": common.authtoken_section(ctx, "glance", "glance_keystone_password"),
        "paste_deploy": {"flavor": "keystone"},
        "oslo_messaging_notifications": {"driver": "noop"},
    }
    ctx.add_ini(svc, "glance-api.conf", conf, owner="glance")
    files = [cfile("glance-api.conf", "/etc/glance/glance-api.conf", "glance", "0600")]
    if RBD_STORE in enabled:
        files += ceph_entries(ctx)
    ctx.add_config_json(svc, "glance-api --config-file /etc/glance/glance-api.conf", files, permissions=[{"path": "/var/lib/glance", "owner": "glance:glance", "recurse": True}])
    return Phase("glance", common.api_service_steps(
        ctx, name="glance", image="glance-api", config_dir=svc, container="glance_api", port=port,
        volumes=["glance:/var/lib/glance/"]))


SERVICE = Service(
    name="glance",
    summary="Glance (images).",
    requires=("keystone", "mariadb"),
    after=("rabbitmq",),
    groups=(Group("glance", ("control",)), Group("glance-api", ("glance",))),
    placed_by=("glance-api",),
    images=("glance-api",),
    options=(
        Option("glance_api_port", int, 9292, "Glance API port."),
        Option("glance_api_workers", int, 1, "Glance API worker processes."),
        Option("glance_backend_ceph", bool, False,
               "Images in the external Ceph cluster's ceph_glance_pool_name pool (the RBD store)."),
        Option("glance_backend_file", bool, "{{ not glance_backend_ceph }}",
               "Images on the glance volume (the file store); on unless glance_backend_ceph is."),
        Option("glance_backend_s3", bool, False, "kolla-ansible's switch for the S3 store.",
               unsupported="the S3 image store is not implemented (file and Ceph RBD are)"),
        Option("ceph_glance_user", str, "glance", "Ceph user of Glance."),
        Option("ceph_glance_keyring", str, "client.{{ ceph_glance_user }}.keyring",
               "Keyring file name of ceph_glance_user, after '<ceph_cluster>.'."),
        Option("ceph_glance_pool_name", str, "images", "Ceph pool of Glance's images."),
        Option("glance_ceph_backends", list, [], "kolla-ansible's list of RBD stores (several clusters).",
               unsupported="several Ceph stores are not implemented: the one RBD store follows "
                           "ceph_glance_user, ceph_glance_pool_name and ceph_cluster"),
    ),
    passwords=(Password("glance_database_password"), Password("glance_keystone_password")),
    databases=(Database("glance", "glance", "glance_database_password"),),
    rabbitmq=RabbitUser("glance"),
    registrations=(Registration("glance", "image", "glance_api_port", description="OpenStack Image",
                                user="glance", password_key="glance_keystone_password"),),
    frontends=(Frontend("glance_api", "glance-api", "glance_api_port", check_path="/healthcheck"),),
    users=(User("glance", 42415, "/var/lib/glance"),),
    ports=(Port("glance_api_port", "glance_api"),),
    project="glance",
    overrides=OSLO_OVERRIDES,
    upgrade=Upgrade(
        jobs=(UpgradeJob("expand", "glance_api", "expand"), UpgradeJob("migrate", "glance_api", "migrate"),
              UpgradeJob("contract", "glance_api", "contract", when="after")),
        replaces=("bootstrap_glance",)),
    plan=plan,
)

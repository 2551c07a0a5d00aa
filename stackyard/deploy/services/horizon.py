"""Horizon: Debian's dashboard under uWSGI, sessions in memcached.

uWSGI starts as root only to bind the HTTP port (80 by default) and then drops
to the horizon user (uid/gid options): with host networking an unprivileged
process cannot bind a port below 1024.
"""

from __future__ import annotations

from stackyard.agent.model import Phase, Step, StepKind
from stackyard.deploy.context import PlanContext, cfile
from stackyard.deploy.merge import render_ini
from stackyard.deploy.options import Option
from stackyard.deploy.services import common
from stackyard.deploy.services.base import Frontend, Group, Password, Port, Service, Upgrade, User

WSGI = "/usr/share/openstack-dashboard/wsgi.py"
STATIC = "/var/lib/openstack-dashboard/static"


def settings(ctx: PlanContext) -> str:
    """local_settings.d/_9999_stackyard.py: Python, so written as text (not INI)."""
    v = ctx.variables
    return (
        "# Written by stackyard: read after Debian's local_settings.py and local_settings.d.\n"
        "DEBUG = False\n"
        "ALLOWED_HOSTS = ['*']\n"
        f"SECRET_KEY = {ctx.passwords['horizon_secret_key']!r}\n"
        "SESSION_ENGINE = 'django.contrib.sessions.backends.cache'\n"
        "CACHES = {'default': {'BACKEND': 'django.core.cache.backends.memcached.PyMemcacheCache',\n"
        f"                       'LOCATION': {common.memcache_servers(ctx)!r}}}}}\n"
        f"OPENSTACK_HOST = {v['kolla_internal_fqdn']!r}\n"
        f"OPENSTACK_KEYSTONE_URL = {common.auth_url(ctx) + '/v3'!r}\n"
        "OPENSTACK_KEYSTONE_DEFAULT_ROLE = 'member'\n"
        "OPENSTACK_KEYSTONE_MULTIDOMAIN_SUPPORT = False\n"
        "OPENSTACK_KEYSTONE_DEFAULT_DOMAIN = 'Default'\n"
        "OPENSTACK_ENDPOINT_TYPE = 'internalURL'\n"
        "OPENSTACK_API_VERSIONS = {'identity': 3}\n"
        "SESSION_COOKIE_SECURE = False\n"
        "CSRF_COOKIE_SECURE = False\n"
        "TIME_ZONE = 'UTC'\n"
    )


def plan(ctx: PlanContext) -> Phase:
    v = ctx.variables
    svc, port = "horizon", int(v["horizon_port"])
    ctx.add_file(svc, "_9999_stackyard.py", settings(ctx), owner="horizon", secret=True)
    ini = common.uwsgi_ini(ctx, WSGI, port, processes=v["horizon_workers"], run_as="horizon",
                           **{"static-map": f"/static={STATIC}", "chdir": "/usr/share/openstack-dashboard"})
    ctx.add_file(svc, "horizon-uwsgi.ini", render_ini(ini), owner="horizon", mode=0o600)
    ctx.add_config_json(svc, "uwsgi --ini /etc/openstack-dashboard/horizon-uwsgi.ini", [
        cfile("_9999_stackyard.py", "/etc/openstack-dashboard/local_settings.d/_9999_stackyard.py",
              "horizon", "0600"),
        cfile("horizon-uwsgi.ini", "/etc/openstack-dashboard/horizon-uwsgi.ini", "horizon", "0600"),
    ])
    c = ctx.container("horizon", "horizon", svc, user="root",
                      healthcheck=common.http_check(ctx, port, "/auth/login/"))
    return Phase("horizon", [Step(StepKind.CONTAINER, "horizon", c),
                             Step(StepKind.WAIT, "horizon", params={"timeout": 120})])


SERVICE = Service(
    name="horizon",
    summary="Horizon (dashboard).",
    requires=("keystone", "memcached"),
    after=("glance", "nova", "neutron", "placement"),
    groups=(Group("horizon", ("control",)),),
    images=("horizon",),
    options=(
        Option("horizon_port", int, 80, "Horizon HTTP port."),
        Option("horizon_workers", int, 2, "uWSGI processes of Horizon."),
    ),
    passwords=(Password("horizon_secret_key"), Password("horizon_database_password")),
    frontends=(Frontend("horizon", "horizon", "horizon_port"),),
    users=(User("horizon", 42420, "/var/lib/horizon"),),
    ports=(Port("horizon_port", "horizon"),),
    # the old release's rendered fragments in memcached break the new one's pages (HTTP 500)
    upgrade=Upgrade(flush_caches=True),
    plan=plan,
)

"""Cron: rotates the services' logs in the shared kolla_logs volume, on every host."""

from __future__ import annotations

from stackyard.agent.model import Phase, Step, StepKind
from stackyard.deploy.context import PlanContext, cfile
from stackyard.deploy.services.base import Group, Service

LOGROTATE = """\
daily
rotate 6
copytruncate
compress
delaycompress
missingok
notifempty
minsize 30M
maxsize 100M
su root kolla

/var/log/kolla/*/*.log {
}
"""


def plan(ctx: PlanContext) -> Phase:
    svc = "cron"
    ctx.add_file(svc, "logrotate.conf", LOGROTATE, mode=0o600)
    ctx.add_file(svc, "logrotate-cron", "# rotate service logs hourly when big enough\n"
                 "17 * * * * root /usr/sbin/logrotate /etc/logrotate.conf\n", mode=0o600)
    ctx.add_config_json(svc, "cron -f", [
        cfile("logrotate.conf", "/etc/logrotate.conf", "root", "0644"),
        cfile("logrotate-cron", "/etc/cron.d/logrotate", "root", "0644"),
    ])
    c = ctx.container("cron", "cron", svc)
    return Phase(svc, [Step(StepKind.CONTAINER, "cron", c)])


SERVICE = Service(
    name="cron",
    summary="the cron container (log rotation) on every host.",
    enabled=True,
    groups=(Group("cron", ("common",)),),
    images=("cron",),
    profile="infra",
    plan=plan,
)

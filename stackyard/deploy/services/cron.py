"""Cron: rotates the services' logs in the shared kolla_logs volume."""

from __future__ import annotations

from stackyard.deploy.context import PlanContext, cfile
from stackyard.deploy.model import Phase, Step

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
    return Phase(svc, [Step("container", "cron", c)])

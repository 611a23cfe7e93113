"""`anwang public release`: publish the public safety map's frozen monthly releases.
"""
from __future__ import annotations

import click
from flask.cli import AppGroup

from geo import audit, db
from web.cli.common import friendly, ready_engine


@click.group("public", cls=AppGroup)
def public_group():
    """The public safety map (平安地图): one frozen, rounded release per month."""


@public_group.command("release", with_appcontext=False)
@click.option("--month", help="YYYY-MM, a complete month (default: every missing one of the last 12).")
@friendly
def release_cmd(month):
    """Publish the home jurisdiction's release of complete months; one already published stays as it is.

    The map publishes a missing month itself on the first request after the month ends; run this
    from cron on the 1st (e.g. `5 0 1 * * cd /srv/anwang && .venv/bin/anwang public release`)
    to have it ready before anyone asks.
    """
    from layers import public

    with db.session_scope(ready_engine()) as session:
        months = [public.parse_release_month(month)] if month else public.complete_months(max(public.MONTHS))
        for release in public.ensure(session, months, actor=audit.Actor.cli()):
            levels = public.summary(session, release)
            state = "published now" if release.new else f"already published {release.created_at:%Y-%m-%d %H:%M}"
            counts = ", ".join(f"{name} {v['cells']} cells, total {v['published_total']}"
                               for name, v in sorted(levels.items()))
            click.echo(f"{release.area_code} {release.label}: {state}; {counts} "
                       f"(random rounding to base {release.base})")

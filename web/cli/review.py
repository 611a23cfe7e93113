"""`anwang risk` and `anwang report`: the four colours and the monthly review.
"""
from __future__ import annotations

import time

import click
from flask.cli import AppGroup

from geo import audit, db, settings
from geo.errors import AnwangError
from web.cli.common import friendly, ready_engine


# -- risk and the monthly report -------------------------------------------------------------
@click.group("risk", cls=AppGroup)
def risk_group():
    """Four-colour risk (四色预警) per grid."""


def _interval(value: str | None) -> float | None:
    """'15m', '1h', '90s' or a number of seconds."""
    if not value:
        return None
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        seconds = float(value[:-1]) * units[value[-1]] if value[-1] in units else float(value)
    except (ValueError, IndexError):
        seconds = -1
    if seconds < 10:
        raise AnwangError(f"--every must be like 15m, 1h or 600 (at least 10 s); got {value!r}",
                          field="every")
    return seconds


@risk_group.command("update", with_appcontext=False)
@click.option("--area", help="Only the grids under this area (default: every grid).")
@click.option("--as-of", "as_of", help="Assess as of this date or date-time (default: now).")
@click.option("--backfill", default=0, type=int, help="First rebuild this many past periods (the history).")
@click.option("--policy", type=click.Path(dir_okay=False), help="Policy file (default layers/risk_policy.yaml).")
@click.option("--every", help="Keep running: refresh every interval (15m, 1h …) until stopped.")
@friendly
def risk_update(area, as_of, backfill, policy, every):
    """Assess every grid's four-colour level now (and alert dispatch on a turn to orange or red).

    For a scheduled refresh either keep it running with --every 15m or use cron, e.g.
    `*/15 * * * * cd /srv/anwang && .venv/bin/anwang risk update`.
    """
    from layers import risk
    from layers.selection import parse_time

    pol = risk.load_policy(policy)
    moment = parse_time(as_of, "as_of") if as_of else None
    seconds = _interval(every)
    engine = ready_engine()
    while True:
        started = time.monotonic()
        with db.session_scope(engine) as session:
            actor = audit.Actor.cli()
            if backfill:
                reports = risk.backfill(session, actor, backfill, as_of=moment, area=area, policy=pol)
                click.echo(f"history: {backfill} period(s) from {reports[0].period_start} rebuilt")
                report = reports[-1]
            else:
                report = risk.update(session, actor, as_of=moment, area=area, policy=pol)
        levels = ", ".join(f"{k} {v}" for k, v in report.levels.items())
        click.echo(f"period {report.period_start}–{report.period_end}: {report.grids} grid(s): {levels}; "
                   f"{len(report.changes)} change(s), {len(report.alerts)} alert(s) "
                   f"({time.monotonic() - started:.1f} s)")
        for code, before, after in report.changes[:20]:
            click.echo(f"  {code}: {before} → {after}")
        if seconds is None:
            return
        backfill = 0
        time.sleep(max(0.0, seconds - (time.monotonic() - started)))


@click.command("report")
@click.option("--area", required=True, help="Area code, e.g. 411103 or 411103102.")
@click.option("--month", required=True, help="YYYY-MM")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="report.html (the PDF is written beside it) or report.pdf.")
@click.option("--no-pdf", is_flag=True, help="Only the HTML.")
@click.option("--lang", default="zh", type=click.Choice(["zh", "en"]), show_default=True)
@friendly
def report_cmd(area, month, output, no_pdf, lang):
    """Write the monthly 周交办、月讲评 report: standalone HTML (works offline) and a PDF."""
    from layers import report

    started = time.monotonic()
    with db.session_scope(ready_engine()) as session:
        files = report.write(session, area, month, output, pdf=not no_pdf, locale=lang,
                             chromium=settings.value("ANWANG_CHROMIUM") or None)
    for path in files:
        click.echo(f"{path}  ({path.stat().st_size / 1e6:.1f} MB)")
    click.echo(f"report written in {time.monotonic() - started:.1f} s")

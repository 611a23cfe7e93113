"""`anwang demo`: load the 郾城区 demo and print one login per role.
"""
from __future__ import annotations

import secrets
import time

import click

from geo import audit, db
from web.cli.common import friendly, ready_engine

# -- demo ------------------------------------------------------------------------------------
DEMO_USERS = [
    ("admin", "admin", None),
    ("dispatcher", "dispatcher", "411103"),
    ("planner", "planner", "411103"),
    ("analyst", "analyst", "411103"),
    ("gridworker", "grid_worker", None),  # scoped to one grid, chosen below
]


@click.command("demo")
@click.option("--reset", is_flag=True, help="Delete the demo region and load it again.")
@click.option("--scale", type=click.IntRange(0, 9999), default=None, metavar="N",
              help="Also keep N copies of the district side by side (codes 99kkkk; 0 removes them).")
@friendly
def demo(reset: bool, scale: int | None):
    """Load the 郾城区 demo (idempotent) and print one login per role."""
    from data import load as demo_load
    from data import yancheng

    started = time.monotonic()
    engine = ready_engine()
    with db.session_scope(engine) as session:
        if reset:
            click.echo("removing the previous demo …")
            demo_load.unload(session)  # whatever version it was; a no-op when there is none
        if demo_load.is_loaded(session):
            click.echo("郾城区 demo already loaded (use --reset to reload)")
            summary = None
        else:
            click.echo("generating 郾城区 demo data …")
            t0 = time.monotonic()
            data = yancheng.generate()
            click.echo(f"  generated in {time.monotonic() - t0:.1f} s")
            summary = demo_load.load(session, data, progress=_progress)
            click.echo("")
            _demo_risk(session)
        logins = _demo_users(session)
    copies = _demo_scale(engine, scale) if scale is not None else None
    elapsed = time.monotonic() - started
    click.echo("")
    click.echo("─" * 64)
    if summary:
        click.echo(f"郾城区 demo loaded in {elapsed:.1f} s")
        for key, value in summary.items():
            click.echo(f"  {key:<22} {value:>10,}" if isinstance(value, int) else f"  {key:<22} {value}")
    if copies:
        click.echo(f"copies of 郾城区 ({scale} wanted) in {copies.pop('seconds'):.1f} s")
        for key, value in copies.items():
            click.echo(f"  {key:<22} {value:>10,}")
    click.echo("Demo logins (passwords are new on every run):")
    for username, role, scope, password in logins:
        click.echo(f"  {username:<12} {password:<22} {role:<12} scope {scope or 'everywhere'}")
    click.echo("─" * 64)


def _demo_risk(session) -> None:
    """Give the demo's grids their four-colour history: the 12 weeks to its last day, then today."""
    from data.yancheng import PERIOD_END
    from layers import risk

    t0 = time.monotonic()
    actor = audit.Actor.cli()
    risk.backfill(session, actor, 12, as_of=PERIOD_END)
    report = risk.update(session, actor)
    levels = ", ".join(f"{k} {v}" for k, v in report.levels.items())
    click.echo(f"  four-colour risk: {levels} ({time.monotonic() - t0:.1f} s)")


def _demo_scale(engine, n: int) -> dict:
    """Keep copies 1..n of the district (data.scale) in a transaction of their own, audited once."""
    from data import scale as demo_scale

    t0 = time.monotonic()
    with db.session_scope(engine) as session:
        before = demo_scale.present(session)
        click.echo(f"copies of 郾城区: {len(before)} present, {n} wanted …")
        if n == 0:
            summary = {"copies removed": len(before)} if before else {}
            removed = demo_scale.remove(session)
            summary.update({f"{k} removed": v for k, v in removed.items()})
        else:
            summary = demo_scale.replicate(session, n, progress=_progress)
        if before or n:
            # One entry for the whole load: a row per copied incident would be millions.
            audit.record(session, audit.Actor.cli(), "demo.scale", target_type="area",
                         target_id=demo_scale.copy_code(1), details={"copies": n, **summary})
    summary["seconds"] = time.monotonic() - t0
    return summary


def _progress(step: str, done: int, total: int) -> None:
    width = 24
    filled = int(width * done / total) if total else width
    click.echo(f"\r  {step:<22} [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,}   ",
               nl=False)
    if done >= total:
        click.echo("")


def demo_password() -> str:
    """A new demo password: random, and within the password policy (geo.users.check_password)."""
    return "demo-" + secrets.token_urlsafe(9)


def _demo_users(session) -> list[tuple[str, str, str | None, str]]:
    from sqlalchemy import text

    from geo import users

    grid = session.execute(text("SELECT code FROM areas WHERE level = 4 AND code LIKE '411103002004%' "
                                "ORDER BY code LIMIT 1")).scalar()
    out = []
    for username, role, scope in DEMO_USERS:
        if role == "grid_worker":
            scope = grid
        password = demo_password()
        users.add_user(session, audit.Actor.cli(), username, role, password=password,
                       scopes=[scope] if scope else None, replace=True)
        out.append((username, role, scope, password))
    return out

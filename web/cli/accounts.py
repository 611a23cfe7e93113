"""`anwang users` and `anwang tokens`: accounts, roles, area scopes and API tokens.

Every change is audited as the command line's user. Token values are printed once, when made.
"""
from __future__ import annotations

import secrets
import sys

import click
from flask.cli import AppGroup

from geo import audit, db
from web.cli.common import friendly, ready_engine


# -- users and tokens ------------------------------------------------------------------------
@click.group("users", cls=AppGroup)
def users_group():
    """Users, roles and area scopes."""


@users_group.command("add", with_appcontext=False)
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["admin", "dispatcher", "planner",
                                                          "analyst", "grid_worker"]))
@click.option("--scope", "scopes", multiple=True, help="Area code of a subtree the user may act in.")
@click.option("--password", help="At least 10 characters, not the user name, not only digits, "
                                 "not a common password; prompted for when omitted.")
@click.option("--display-name")
@friendly
def users_add(name, role, scopes, password, display_name):
    """Create a user with a role and area scope."""
    from geo import users

    password = _password_or_generated(password)
    with db.session_scope(ready_engine()) as session:
        users.add_user(session, audit.Actor.cli(), name, role, password=password,
                       scopes=list(scopes), display_name=display_name)
    click.echo(f"user {name} added ({role}{', scope ' + ', '.join(scopes) if scopes else ''})")


def _password_or_generated(password: str | None) -> str:
    if password is not None:
        return password
    if sys.stdin.isatty():
        return click.prompt("password", hide_input=True, confirmation_prompt=True)
    password = secrets.token_urlsafe(12)
    click.echo(f"generated password: {password}")
    return password


@users_group.command("list", with_appcontext=False)
@friendly
def users_list():
    """List users: role, scope, enabled or disabled, last login."""
    from geo import users

    with db.session_scope(ready_engine()) as session:
        rows = users.list_users(session)
    click.echo(f"{'user':<20} {'role':<12} {'state':<9} {'last login':<17} scope")
    for r in rows:
        click.echo(f"{r['username']:<20} {r['role']:<12} "
                   f"{'enabled' if r['active'] else 'disabled':<9} {_when(r['last_login']):<17} "
                   f"{', '.join(r['scopes']) or ('everywhere' if r['role'] == 'admin' else 'none')}")


@users_group.command("disable", with_appcontext=False)
@click.argument("name")
@friendly
def users_disable(name):
    """Disable user NAME: no login, and every session and token they hold is revoked."""
    from geo import users

    with db.session_scope(ready_engine()) as session:
        revoked = users.set_active(session, audit.Actor.cli(), name, False)
    click.echo(f"user {name} disabled ({revoked['sessions']} sessions and {revoked['tokens']} "
               "tokens revoked)")


@users_group.command("enable", with_appcontext=False)
@click.argument("name")
@friendly
def users_enable(name):
    """Enable user NAME again (sessions and tokens revoked earlier stay revoked)."""
    from geo import users

    with db.session_scope(ready_engine()) as session:
        users.set_active(session, audit.Actor.cli(), name, True)
    click.echo(f"user {name} enabled")


@users_group.command("password", with_appcontext=False)
@click.argument("name")
@click.option("--password", help="The new password; prompted for when omitted.")
@friendly
def users_password(name, password):
    """Set a new password for user NAME and revoke their sessions and tokens."""
    from geo import users

    password = _password_or_generated(password)
    with db.session_scope(ready_engine()) as session:
        revoked = users.set_password(session, audit.Actor.cli(), name, password)
    click.echo(f"password of {name} changed ({revoked['sessions']} sessions and "
               f"{revoked['tokens']} tokens revoked)")


@click.group("tokens", cls=AppGroup)
def tokens_group():
    """API tokens for scripts and devices."""


@tokens_group.command("create", with_appcontext=False)
@click.argument("name")
@click.option("--label", help="What the token is for (defaults to the user name).")
@friendly
def tokens_create(name, label):
    """Create a bearer token acting as user NAME and print it (shown only once)."""
    from geo import users

    with db.session_scope(ready_engine()) as session:
        token = users.create_token(session, audit.Actor.cli(), name, label)
    click.echo(token)


@tokens_group.command("list", with_appcontext=False)
@click.argument("name", required=False)
@friendly
def tokens_list(name):
    """List API tokens, of user NAME or of everyone (never the token itself)."""
    from geo import users

    with db.session_scope(ready_engine()) as session:
        rows = users.list_tokens(session, name)
    click.echo(f"{'id':>5}  {'user':<20} {'name':<20} {'created':<17} {'last used':<17} revoked")
    for r in rows:
        click.echo(f"{r['id']:>5}  {r['username']:<20} {r['name']:<20} {_when(r['created_at']):<17} "
                   f"{_when(r['last_used_at']):<17} {_when(r['revoked_at'])}")


@tokens_group.command("revoke", with_appcontext=False)
@click.argument("token_id", metavar="ID", type=int)
@friendly
def tokens_revoke(token_id):
    """Revoke the API token with this ID (see `anwang tokens list`)."""
    from geo import users

    with db.session_scope(ready_engine()) as session:
        token = users.revoke_token(session, audit.Actor.cli(), token_id)
    click.echo(f"token {token_id} ({token['name']}, user {token['username']}) revoked")


def _when(ts) -> str:
    return ts.astimezone().strftime("%Y-%m-%d %H:%M") if ts else "-"

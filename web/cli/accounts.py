"""`anwang users` and `anwang tokens`: accounts, roles, area scopes and API tokens.
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
@click.option("--password", help="At least 8 characters; prompted for when omitted.")
@click.option("--display-name")
@friendly
def users_add(name, role, scopes, password, display_name):
    """Create a user with a role and area scope."""
    from geo import users

    if password is None:
        if sys.stdin.isatty():
            password = click.prompt("password", hide_input=True, confirmation_prompt=True)
        else:
            password = secrets.token_urlsafe(12)
            click.echo(f"generated password: {password}")
    with db.session_scope(ready_engine()) as session:
        users.add_user(session, audit.Actor.cli(), name, role, password=password,
                       scopes=list(scopes), display_name=display_name)
    click.echo(f"user {name} added ({role}{', scope ' + ', '.join(scopes) if scopes else ''})")


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

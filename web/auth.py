"""Authentication (session login or bearer token), role checks, area scope, CSRF.

The session cookie is signed and carries only the key of a server-side session (geo/logins.py):
a cookie counts only while its session is live, so logout, disabling a user or changing their
password ends it everywhere.

Every view declares who may call it with `@roles(...)` or `@public`; `check_declared` refuses to
start an app with an undeclared route, so a forgotten decorator is a start-up error, not a hole.
"""
from __future__ import annotations

import base64
import functools
import math
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_wtf.csrf import CSRFError, CSRFProtect

from geo import logins
from geo import users as users_core
from geo.errors import Forbidden
from geo.policy import Audience
from geo.users import Principal

from . import database
from .errors import error_response, is_ogc, wants_html

csrf = CSRFProtect()
bp = Blueprint("auth", __name__)
ANY_USER = ("admin", "dispatcher", "planner", "analyst", "grid_worker")
# The one thing the signed session cookie says about the user: their server-side session's key.
SESSION_KEY = "sid"


def roles(*allowed: str):
    """Allow the view to users with one of these roles (admin always passes)."""
    unknown = set(allowed) - set(ANY_USER)
    if unknown:
        raise ValueError(f"unknown roles {unknown}")

    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            user = current_user()
            if user is None:
                if _is_api():
                    return error_response(401, "unauthorized", "login or a bearer token is required")
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            if user.role != "admin" and user.role not in allowed:
                return error_response(403, "forbidden",
                                      f"role {user.role!r} may not use this; needs one of "
                                      f"{', '.join(allowed)}")
            return view(*args, **kwargs)

        wrapper.anwang_roles = tuple(allowed)
        return wrapper

    return decorate


def public(view):
    """Mark a view as open to everyone, logged in or not."""
    view.anwang_roles = ("public",)
    return view


def _is_api() -> bool:
    # A GIS client reading /ogc gets a 401 as the API does; a browser asking for its pages logs in.
    return request.path.startswith(("/api/", "/tiles/")) or (is_ogc() and not wants_html())


def _basic_token(credentials: str) -> Principal | None:
    """The user of HTTP basic credentials `username:token` when the token is theirs.

    Some GIS clients (QGIS's basic authentication, GDAL's USERPWD) can send only this; it is
    accepted for reading /ogc, never as a password login and never for a write.
    """
    try:
        username, _, token = base64.b64decode(credentials, validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    caller = users_core.principal_for_token(database.session(), token) if token else users_core.Caller(None)
    _keep(caller)
    principal = caller.principal
    return principal if principal is not None and principal.username == username else None


def _keep(caller) -> None:
    """Commit the last-seen time reading a credential wrote (a read-only request writes nothing)."""
    if caller.wrote:
        database.session().commit()


def current_user() -> Principal | None:
    """The caller: from a bearer token, else from the session cookie; cached per request."""
    if "principal" in g:
        return g.principal
    principal = None
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        caller = users_core.principal_for_token(database.session(), header[7:].strip())
        _keep(caller)
        principal = caller.principal
    elif header.lower().startswith("basic ") and is_ogc() and request.method in ("GET", "HEAD"):
        principal = _basic_token(header[6:].strip())
    elif session.get(SESSION_KEY):
        caller = logins.principal_for_session(database.session(), session[SESSION_KEY])
        _keep(caller)
        principal = caller.principal
    g.principal = principal
    return principal


def actor():
    """The audit actor for the current request."""
    user = current_user()
    from geo.audit import Actor

    if user is None:
        return Actor(name="anonymous", remote_addr=request.remote_addr)
    return user.actor(request.remote_addr)


def audience() -> Audience:
    """The caller as the policy layer sees them: role and scope, or the public."""
    return Audience.of(current_user())


def require_scope(area_code, field: str = "area"):
    """The area with exactly this code if the caller may act in it: 404 for an unknown code,
    403 outside the caller's scope (geo.policy)."""
    user = current_user()
    if user is None:
        raise Forbidden("login required")
    return user.scope.area(database.session(), area_code, field)


# Where each role starts its work after login (and where the installed app opens).
START = {"grid_worker": "phone.day"}


def start_url(role: str | None) -> str:
    """The page a role lands on: a grid worker's day, everyone else's map."""
    return url_for(START.get(role or "", "pages.index"))


def _safe_next(target: str | None, role: str | None = None) -> str:
    # Only local paths: an absolute URL here would be an open redirect. Without one, each role
    # lands on its own work.
    if not target or urlsplit(target).netloc or not target.startswith("/") or target.startswith("//"):
        return start_url(role)
    return target


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    if request.method == "POST":
        s = database.session()
        attempt = logins.attempt(s, request.form.get("username", "").strip(),
                                 request.form.get("password", ""), remote_addr=request.remote_addr,
                                 user_agent=request.user_agent.string,
                                 lifetime=current_app.permanent_session_lifetime)
        if attempt.ok and session.get(SESSION_KEY):
            # Logging in over an earlier session ends it: one browser, one live session.
            logins.close_session(s, session[SESSION_KEY], request.remote_addr)
        s.commit()  # failures count and are audited as much as successes
        if attempt.locked:
            return _throttled(attempt)
        if not attempt.ok:
            flash(_("Wrong username or password."), "error")
            return render_template("login.html"), 401
        session.clear()
        session[SESSION_KEY] = attempt.session_key
        session.permanent = True
        user = logins.principal_for_session(s, attempt.session_key).principal
        return redirect(_safe_next(request.args.get("next"), user.role if user else None))
    return render_template("login.html")


def _throttled(attempt: logins.Attempt):
    minutes = max(1, math.ceil(attempt.retry_after / 60))
    if attempt.locked == "address":
        flash(ngettext("Too many failed logins from your address. Try again in %(num)d minute.",
                       "Too many failed logins from your address. Try again in %(num)d minutes.",
                       minutes), "error")
    else:
        flash(ngettext("Too many failed logins for this account. Try again in %(num)d minute.",
                       "Too many failed logins for this account. Try again in %(num)d minutes.",
                       minutes), "error")
    response = make_response(render_template("login.html"), 429)
    response.headers["Retry-After"] = str(attempt.retry_after)
    return response


@bp.route("/logout", methods=["POST"])
@public
def logout():
    key = session.get(SESSION_KEY)
    if key:
        s = database.session()
        logins.close_session(s, key, request.remote_addr)
        s.commit()
    session.clear()
    return redirect(url_for("auth.login"))


def init_app(app: Flask) -> None:
    csrf.init_app(app)
    app.register_blueprint(bp)

    @app.before_request
    def protect_from_csrf():
        # Bearer-token calls carry no ambient credential, so CSRF does not apply to them.
        if request.method in ("GET", "HEAD", "OPTIONS") or request.routing_exception is not None:
            return None  # reads need no token; a 404/405 is answered as such
        if request.headers.get("Authorization", "").lower().startswith("bearer "):
            return None
        view = current_app.view_functions.get(request.endpoint)
        if getattr(view, "anwang_csrf_exempt", False):
            return None
        csrf.protect()
        return None

    @app.errorhandler(CSRFError)
    def csrf_failed(exc: CSRFError):
        return error_response(400, "csrf", f"CSRF check failed: {exc.description}")

    @app.context_processor
    def inject_user():
        return {"current_user": current_user()}


def csrf_exempt(view):
    """Exempt a view that authenticates by device token, not by cookie."""
    view.anwang_csrf_exempt = True
    return view


def check_declared(app: Flask) -> None:
    """Refuse to start if any route lacks a role declaration."""
    missing = [rule.rule for rule in app.url_map.iter_rules()
               if rule.endpoint != "static"
               and not hasattr(app.view_functions[rule.endpoint], "anwang_roles")]
    if missing:
        raise RuntimeError(f"routes without @roles/@public: {', '.join(sorted(missing))}")

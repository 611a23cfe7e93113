"""Login with CSRF and hardened cookies, bearer tokens, roles, scopes, audited writes."""
import re

import pytest
from sqlalchemy import text

from geo import audit, users
from geo.errors import Conflict, Forbidden, InvalidInput, NotFound


def csrf_from(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


@pytest.fixture()
def csrf_app(app):
    app.config["WTF_CSRF_ENABLED"] = True
    return app


def test_login_page_flow_sets_a_hardened_cookie(csrf_app, make_user):
    client = csrf_app.test_client()
    name, password = make_user("admin")
    page = client.get("/login").get_data(as_text=True)
    response = client.post("/login?next=/", data={"username": name, "password": password,
                                                  "csrf_token": csrf_from(page)})
    assert response.status_code == 302 and response.location == "/"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/").status_code == 200


def test_login_without_csrf_token_is_refused(csrf_app, make_user):
    client = csrf_app.test_client()
    name, password = make_user("admin")
    response = client.post("/login", data={"username": name, "password": password})
    assert response.status_code == 400


def test_wrong_password_is_401_and_says_so(csrf_app, make_user):
    client = csrf_app.test_client()
    name, _ = make_user("admin")
    page = client.get("/login").get_data(as_text=True)
    response = client.post("/login", data={"username": name, "password": "nope-nope",
                                           "csrf_token": csrf_from(page)})
    assert response.status_code == 401 and "用户名或密码错误" in response.get_data(as_text=True)


def test_next_cannot_redirect_off_site(csrf_app, make_user):
    client = csrf_app.test_client()
    name, password = make_user("admin")
    page = client.get("/login").get_data(as_text=True)
    response = client.post("/login?next=//evil.example/x", data={
        "username": name, "password": password, "csrf_token": csrf_from(page)})
    assert response.location == "/"


def test_bearer_token_is_accepted_and_stored_hashed(client, session, make_user, tiny):
    name, _ = make_user("analyst", "TZ")
    token = users.create_token(session, audit.Actor("test"), name)
    stored = session.execute(text("SELECT token_hash FROM api_tokens t JOIN users u ON u.id = t.user_id "
                                  "WHERE u.username = :u"), {"u": name}).scalar()
    assert token not in stored and stored == users.hash_token(token)
    ok = client.get("/api/areas?level=1", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    bad = client.get("/api/areas?level=1", headers={"Authorization": "Bearer anw_wrong"})
    assert bad.status_code == 401 and bad.get_json()["error"]["code"] == "unauthorized"


def test_a_credential_is_read_in_one_query_and_its_last_use_kept_once_a_minute(client, session, make_user, tiny):
    from geo import logins

    name, _ = make_user("analyst", "TZ")
    token = users.create_token(session, audit.Actor("test"), name)
    first = users.principal_for_token(session, token)
    assert first.wrote and first.principal.username == name and first.principal.scope_codes == ["TZ"]
    used = session.execute(text("SELECT last_used_at FROM api_tokens t JOIN users u ON u.id = t.user_id "
                                "WHERE u.username = :u"), {"u": name}).scalar_one()
    again = users.principal_for_token(session, token)     # within the minute: nothing written
    assert not again.wrote and again.principal == first.principal
    assert session.execute(text("SELECT last_used_at FROM api_tokens WHERE last_used_at = :t"),
                           {"t": used}).scalar_one() == used
    session.execute(text("UPDATE api_tokens SET last_used_at = now() - interval '2 minutes'"))
    assert users.principal_for_token(session, token).wrote
    assert users.principal_for_token(session, "anw_wrong") == users.Caller(None)
    # The same for a browser session, whose scopes come in the same row.
    principal = first.principal
    key = logins.open_session(session, principal)
    seen = logins.principal_for_session(session, key)
    assert not seen.wrote and seen.principal == principal
    session.execute(text("UPDATE user_sessions SET last_seen_at = now() - interval '2 minutes'"))
    assert logins.principal_for_session(session, key).wrote


def test_every_route_declares_its_roles(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint != "static":
            assert hasattr(app.view_functions[rule.endpoint], "anwang_roles"), rule.rule


def test_an_undeclared_route_stops_the_app(app):
    from web.auth import check_declared

    app.add_url_rule("/naked", "naked", lambda: "x")
    with pytest.raises(RuntimeError, match="/naked"):
        check_declared(app)


def test_roles_decorator_refuses_other_roles(app, tiny):
    from web.auth import roles

    @roles("planner")
    def planner_only():
        return "ok"

    app.add_url_rule("/api/planner-only", "planner_only", planner_only)
    # A grid worker is refused with the JSON error shape, a planner passes, an admin always passes.
    for role, expected in (("grid_worker", 403), ("planner", 200), ("admin", 200)):
        c = app.test_client()
        _user(app, role, c)
        response = c.get("/api/planner-only")
        assert response.status_code == expected, role
        if expected == 403:
            assert response.get_json()["error"]["code"] == "forbidden"


def _user(app, role, client=None):
    """Add a user of `role` (scoped to TZ); sign `client` in as them; return the session key."""
    from tests.conftest import sign_in
    from web import database

    with app.app_context():
        s = database.session()
        name = f"r_{role}"
        users.add_user(s, audit.Actor("test"), name, role, password="long enough 1",
                       scopes=None if role == "admin" else ["TZ"])
        key = sign_in(client or app.test_client(), s, name)
        s.commit()
        return key


def test_scope_is_a_subtree_and_codes_are_exact(app, session, tiny):
    from web import auth

    key = _user(app, "grid_worker")
    with app.test_request_context("/"):
        from flask import session as flask_session
        flask_session[auth.SESSION_KEY] = key
        auth.require_scope("TZ1A1")   # inside TZ
        session.execute(text("UPDATE user_scopes SET area_id = (SELECT id FROM areas WHERE code = 'TZ1') "
                             "WHERE user_id = (SELECT id FROM users WHERE username = 'r_grid_worker')"))
        from flask import g
        g.pop("principal", None)
        with pytest.raises(Forbidden, match="outside your scope"):
            auth.require_scope("TZ2")
        with pytest.raises(NotFound):
            auth.require_scope("NOPE")              # unknown before any scope decision
        for written in (" TZ1A", "TZ1A\n", "TZ1A\x00"):
            with pytest.raises(InvalidInput):
                auth.require_scope(written)          # never trimmed into a code


BAD_USERS = [
    (dict(username="x", role="admin"), "username"),
    (dict(username="ok_name", role="emperor"), "role"),
    (dict(username="ok_name", role="analyst"), "scope"),
    (dict(username="ok_name", role="admin", password="short"), "password"),
]


@pytest.mark.parametrize("kwargs,field", BAD_USERS)
def test_bad_users_are_refused_by_field(session, kwargs, field):
    with pytest.raises(InvalidInput) as err:
        users.add_user(session, audit.Actor("test"), **kwargs)
    assert err.value.field == field


def test_user_writes_are_audited_and_duplicates_refused(session):
    users.add_user(session, audit.Actor("tester"), "audited_one", "admin", password="long enough 1")
    row = session.execute(text("SELECT actor, action, target_id FROM audit_log "
                               "WHERE target_id = 'audited_one'")).one()
    assert tuple(row) == ("tester", "user.add", "audited_one")
    with pytest.raises(Conflict):
        users.add_user(session, audit.Actor("tester"), "audited_one", "admin")

"""Accounts hold up: throttled logins, sessions that end on logout, revocable tokens, disabled users,
the password policy, soft locks that only their holder (or an administrator) releases, the CLI."""
import re

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from geo import audit, logins, users
from geo.boundaries import locks
from geo.errors import Forbidden, InvalidInput
from tests.conftest import sign_in
from tests.geo import planner_fixtures

PASSWORD = "correct horse 1"


def csrf_of(client) -> str:
    page = client.get("/login").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def post_login(client, username, password, addr="127.0.0.1", lang=None):
    token = csrf_of(client)
    return client.post("/login" + (f"?lang={lang}" if lang else ""),
                       data={"username": username, "password": password, "csrf_token": token},
                       environ_base={"REMOTE_ADDR": addr})


def attempts(session, username):
    return dict(session.execute(text("SELECT outcome, count(*) FROM login_attempts "
                                     "WHERE username = :u GROUP BY outcome"), {"u": username}).all())


def age_attempts(session, minutes, **where):
    """Move stored attempts back in time, as if `minutes` had passed."""
    column, value = next(iter(where.items()))
    session.execute(text(f"UPDATE login_attempts SET ts = ts - make_interval(mins => :m) "
                         f"WHERE {column} = :v"), {"m": minutes, "v": value})


# -- throttling ------------------------------------------------------------------------------
def test_sixty_wrong_passwords_lock_the_account_and_the_right_one_is_refused(client, session,
                                                                              make_user):
    name, password = make_user("admin")
    for i in range(60):
        # From a different address each time: the account itself is what gets locked.
        response = post_login(client, name, f"wrong guess {i}", addr=f"10.1.{i}.1")
        assert response.status_code == (401 if i < logins.USER_FAILURES else 429), i
    assert attempts(session, name) == {"failure": 5, "refused": 55}  # only 5 were checked
    response = post_login(client, name, password, addr="10.9.9.9")
    assert response.status_code == 429
    assert 0 < int(response.headers["Retry-After"]) <= 15 * 60
    assert "该账号登录失败次数过多" in response.get_data(as_text=True)
    assert "15 分钟后再试" in response.get_data(as_text=True)
    assert client.get("/api/areas?level=1").status_code == 401  # no session was opened
    english = post_login(client, name, password, addr="10.9.9.9", lang="en")
    assert english.status_code == 429
    assert "Too many failed logins for this account" in english.get_data(as_text=True)


def test_the_account_lock_ends_after_its_time(client, session, make_user):
    name, password = make_user("admin")
    for _ in range(logins.USER_FAILURES):
        assert post_login(client, name, "not the password").status_code == 401
    assert post_login(client, name, password).status_code == 429
    age_attempts(session, 14, username=name)
    response = post_login(client, name, password)
    assert response.status_code == 429 and int(response.headers["Retry-After"]) <= 60
    age_attempts(session, 2, username=name)
    assert post_login(client, name, password).status_code == 302


def test_failures_spread_wider_than_the_window_do_not_lock(client, session, make_user):
    name, password = make_user("admin")
    for _ in range(logins.USER_FAILURES - 1):
        post_login(client, name, "not the password")
    age_attempts(session, 16, username=name)
    assert post_login(client, name, "not the password").status_code == 401
    assert post_login(client, name, password).status_code == 302


def test_a_successful_login_clears_earlier_failures(client, session, make_user):
    name, password = make_user("admin")
    for _ in range(logins.USER_FAILURES - 1):
        post_login(client, name, "not the password")
    assert post_login(client, name, password).status_code == 302
    assert post_login(client, name, "not the password").status_code == 401
    assert post_login(client, name, password).status_code == 302


def test_one_address_failing_on_many_accounts_is_blocked(client, session, make_user):
    name, password = make_user("admin")
    for i in range(logins.ADDRESS_FAILURES):
        # A different username each time, so no account lock is ever reached.
        assert post_login(client, f"guess_{i}", "password guess", addr="10.2.0.7").status_code == 401
    blocked = post_login(client, name, password, addr="10.2.0.7")
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    assert "来自您所在地址的登录失败次数过多" in blocked.get_data(as_text=True)
    assert post_login(client, name, password, addr="10.2.0.8").status_code == 302  # others log in
    age_attempts(session, 16, remote_addr="10.2.0.7")
    assert post_login(client, name, password, addr="10.2.0.7").status_code == 302


def test_logins_are_audited_without_the_password(client, session, make_user):
    name, password = make_user("admin")
    post_login(client, name, "secret wrong guess", addr="10.3.0.1")
    post_login(client, "no_such_user", "another guess", addr="10.3.0.1")
    post_login(client, name, password, addr="10.3.0.1")
    rows = session.execute(text("SELECT action, actor, target_id, remote_addr, details::text AS d "
                                "FROM audit_log WHERE action IN ('login', 'login.failed') "
                                "AND remote_addr = '10.3.0.1' ORDER BY id")).mappings().all()
    assert [(r["action"], r["target_id"]) for r in rows] == [
        ("login.failed", name), ("login.failed", "no_such_user"), ("login", name)]
    assert rows[0]["actor"] == "anonymous" and rows[2]["actor"] == name
    assert not any("guess" in (r["d"] or "") or PASSWORD in (r["d"] or "") for r in rows)


def test_refusals_while_locked_are_audited(client, session, make_user):
    name, password = make_user("admin")
    for _ in range(logins.USER_FAILURES + 1):
        post_login(client, name, "not the password", addr="10.4.0.1")
    reasons = session.execute(text("SELECT details->>'reason' FROM audit_log WHERE action = "
                                   "'login.failed' AND target_id = :u ORDER BY id"),
                              {"u": name}).scalars().all()
    assert reasons[-1] == "account locked" and len(reasons) == logins.USER_FAILURES + 1


# -- sessions --------------------------------------------------------------------------------
def test_the_cookie_carries_only_a_session_key(client, session, make_user):
    name, password = make_user("admin")
    assert post_login(client, name, password).status_code == 302
    row = session.execute(text("SELECT s.user_id, s.remote_addr, s.expires_at > now() AS live "
                               "FROM user_sessions s JOIN users u ON u.id = s.user_id "
                               "WHERE u.username = :u"), {"u": name}).mappings().one()
    assert row["live"] and row["remote_addr"] == "127.0.0.1"
    with client.session_transaction() as sess:
        assert set(sess) - {"_flashes", "csrf_token", "_permanent"} == {"sid"}


def test_the_old_cookie_is_refused_after_logout(app, client, session, make_user):
    name, password = make_user("admin")
    assert post_login(client, name, password).status_code == 302
    cookie = client.get_cookie("anwang_session").value
    assert client.get("/api/areas?level=1").status_code == 200
    page = client.get("/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert session.execute(text("SELECT action FROM audit_log WHERE action = 'logout' "
                                "AND target_id = :u"), {"u": name}).scalar() == "logout"
    replay = app.test_client()
    replay.set_cookie("anwang_session", cookie)
    assert replay.get("/api/areas?level=1").status_code == 401
    page = replay.get("/")
    assert page.status_code == 302 and "/login" in page.location


def test_logging_in_again_ends_the_earlier_session(app, client, session, make_user):
    first, first_password = make_user("admin")
    second, second_password = make_user("admin")
    assert post_login(client, first, first_password).status_code == 302
    cookie = client.get_cookie("anwang_session").value
    assert post_login(client, second, second_password).status_code == 302
    replay = app.test_client()
    replay.set_cookie("anwang_session", cookie)
    assert replay.get("/api/areas?level=1").status_code == 401
    assert client.get("/api/areas?level=1").status_code == 200


def test_an_expired_session_is_refused(client, session, login):
    login("admin")
    assert client.get("/api/areas?level=1").status_code == 200
    session.execute(text("UPDATE user_sessions SET expires_at = now() - interval '1 second'"))
    assert client.get("/api/areas?level=1").status_code == 401


def test_a_revoked_token_is_refused(client, session, make_user):
    name, _ = make_user("admin")
    token = users.create_token(session, audit.Actor("test"), name, "script")
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/areas?level=1", headers=bearer).status_code == 200
    token_id = users.list_tokens(session, name)[0]["id"]
    users.revoke_token(session, audit.Actor("test"), token_id)
    response = client.get("/api/areas?level=1", headers=bearer)
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthorized"


def test_a_disabled_user_loses_sessions_and_tokens(app, client, session, make_user):
    name, password = make_user("admin")
    token = users.create_token(session, audit.Actor("test"), name)
    bearer = {"Authorization": f"Bearer {token}"}
    sign_in(client, session, name)
    assert client.get("/api/areas?level=1").status_code == 200
    revoked = users.set_active(session, audit.Actor("test"), name, False)
    assert revoked == {"sessions": 1, "tokens": 1}
    assert client.get("/api/areas?level=1").status_code == 401
    assert client.get("/api/areas?level=1", headers=bearer).status_code == 401
    assert post_login(app.test_client(), name, password).status_code == 401
    # Enabled again, the account logs in afresh, but what was revoked stays revoked.
    users.set_active(session, audit.Actor("test"), name, True)
    assert client.get("/api/areas?level=1", headers=bearer).status_code == 401
    assert client.get("/api/areas?level=1").status_code == 401
    assert post_login(app.test_client(), name, password).status_code == 302
    actions = session.execute(text("SELECT action FROM audit_log WHERE target_id = :u "
                                   "AND action LIKE 'user.%' ORDER BY id"), {"u": name}).scalars().all()
    assert actions == ["user.add", "user.disable", "user.enable"]


def test_a_disabled_user_is_refused_even_before_revocation(client, session, make_user):
    name, _ = make_user("admin")
    token = users.create_token(session, audit.Actor("test"), name)
    sign_in(client, session, name)
    session.execute(text("UPDATE users SET active = false WHERE username = :u"), {"u": name})
    assert client.get("/api/areas?level=1").status_code == 401
    assert client.get("/api/areas?level=1",
                      headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_a_new_password_revokes_sessions_and_tokens(app, client, session, make_user):
    name, password = make_user("admin")
    token = users.create_token(session, audit.Actor("test"), name)
    sign_in(client, session, name)
    users.set_password(session, audit.Actor("test"), name, "a new passphrase")
    assert client.get("/api/areas?level=1").status_code == 401
    assert client.get("/api/areas?level=1",
                      headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert post_login(app.test_client(), name, password).status_code == 401
    assert post_login(app.test_client(), name, "a new passphrase").status_code == 302
    assert session.execute(text("SELECT count(*) FROM audit_log WHERE action = 'user.password' "
                                "AND target_id = :u"), {"u": name}).scalar() == 1


# -- password policy -------------------------------------------------------------------------
BAD_PASSWORDS = [
    ("short1", "at least 10 characters"),
    ("pw_victim_1", "not be the username"),
    ("PW_Victim_1", "not be the username"),
    ("12345678901234", "only digits"),
    ("password123", "common"),
    ("QwertyUiop", "common"),
    ("woaini1314", "common"),
]


@pytest.mark.parametrize("password,says", BAD_PASSWORDS)
def test_the_password_policy_refuses_naming_the_field(session, password, says):
    with pytest.raises(InvalidInput) as err:
        users.add_user(session, audit.Actor("test"), "pw_victim_1", "admin", password=password)
    assert err.value.field == "password" and says in err.value.message
    assert "at least 10 characters" in err.value.message  # and says what is expected


@pytest.mark.parametrize("password,says", BAD_PASSWORDS)
def test_a_password_change_follows_the_same_policy(session, password, says):
    users.add_user(session, audit.Actor("test"), "pw_victim_1", "admin", password="good enough 1")
    with pytest.raises(InvalidInput) as err:
        users.set_password(session, audit.Actor("test"), "pw_victim_1", password)
    assert err.value.field == "password" and says in err.value.message


def test_demo_passwords_follow_the_policy():
    from web.cli.demo import DEMO_USERS, demo_password

    for _ in range(200):
        password = demo_password()
        for username, _role, _scope in DEMO_USERS:
            users.check_password(password, username)


# -- soft locks ------------------------------------------------------------------------------
@pytest.fixture()
def region(session):
    return planner_fixtures.build(session)


def csrf_header(client) -> dict:
    page = client.get("/").get_data(as_text=True)
    return {"X-CSRFToken": re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)}


def test_someone_elses_lock_is_403_and_an_admin_may_override(client, session, login, region):
    holder = login("planner", "EV")
    assert client.post("/api/areas/EV1001/lock", headers=csrf_header(client)).get_json()["mine"]
    login("planner", "EV")
    refused = client.delete("/api/areas/EV1001/lock", headers=csrf_header(client))
    assert refused.status_code == 403
    assert holder in refused.get_json()["error"]["message"]
    not_admin = client.delete("/api/areas/EV1001/lock?override=1", headers=csrf_header(client))
    assert not_admin.status_code == 403 and not_admin.get_json()["error"]["field"] == "override"
    assert [lock["username"] for lock in client.get("/api/locks?parent=EV").get_json()["locks"]] == [holder]
    admin = login("admin")
    released = client.delete("/api/areas/EV1001/lock?override=1", headers=csrf_header(client))
    assert released.status_code == 200 and released.get_json()["lock"]["username"] == holder
    assert client.get("/api/locks?parent=EV").get_json()["locks"] == []
    entry = session.execute(text("SELECT actor, target_id, details->>'holder' AS holder FROM "
                                 "audit_log WHERE action = 'lock.override'")).mappings().one()
    assert dict(entry) == {"actor": admin, "target_id": "EV1001", "holder": holder}


def test_an_admin_without_override_is_refused_too(client, login, region):
    holder = login("planner", "EV")
    client.post("/api/areas/EV1001/lock", headers=csrf_header(client))
    login("admin")
    refused = client.delete("/api/areas/EV1001/lock", headers=csrf_header(client))
    assert refused.status_code == 403 and holder in refused.get_json()["error"]["message"]


def test_lock_rules_in_the_core(session, region):
    alice = audit.Actor("alice", role="planner")
    locks.acquire_lock(session, "EV1001", alice)
    with pytest.raises(Forbidden, match="locked by alice"):
        locks.release_lock(session, "EV1001", audit.Actor("bob", role="planner"))
    assert locks.release_lock(session, "EV1001", alice)["username"] == "alice"
    assert locks.release_lock(session, "EV1001", alice) is None  # nothing left to release
    # An expired lock is nobody's: releasing it is not someone else's business.
    locks.acquire_lock(session, "EV1001", alice)
    session.execute(text("UPDATE area_locks SET expires_at = now() - interval '1 minute'"))
    assert locks.release_lock(session, "EV1001", audit.Actor("bob", role="planner")) is None


# -- the command line ------------------------------------------------------------------------
@pytest.fixture()
def run(engine):
    runner = CliRunner()
    from web.cli import main

    def invoke(*args):
        return runner.invoke(main, list(args), catch_exceptions=False)

    yield invoke
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM users WHERE username LIKE 'cli_sec_%'"))
        conn.execute(text("DELETE FROM audit_log WHERE target_id LIKE 'cli_sec_%'"))


def test_cli_users_and_tokens(run, engine):
    assert run("users", "add", "cli_sec_a", "--role", "admin", "--password", "long enough 1").exit_code == 0
    weak = run("users", "add", "cli_sec_b", "--role", "admin", "--password", "1234567890")
    assert weak.exit_code == 1
    assert weak.output.strip().splitlines() == [weak.output.strip()]  # one line
    assert weak.output.startswith("error (password): password must not be only digits")
    token = run("tokens", "create", "cli_sec_a", "--label", "nightly").output.strip()

    listed = run("tokens", "list", "cli_sec_a")
    assert listed.exit_code == 0 and token not in listed.output
    line = next(row for row in listed.output.splitlines() if "cli_sec_a" in row)
    token_id = int(line.split()[0])
    assert "nightly" in line and line.rstrip().endswith("-")  # not revoked
    everyone = run("tokens", "list")
    assert any(row.split()[0] == str(token_id) for row in everyone.output.splitlines()[1:])
    assert run("tokens", "list", "cli_sec_nobody").exit_code == 1

    revoked = run("tokens", "revoke", str(token_id))
    assert revoked.exit_code == 0 and f"token {token_id}" in revoked.output
    line = next(row for row in run("tokens", "list", "cli_sec_a").output.splitlines() if "cli_sec_a" in row)
    assert not line.rstrip().endswith("-")  # revoked, with its time
    again = run("tokens", "revoke", str(token_id))
    assert again.exit_code == 1 and "already revoked" in again.output
    missing = run("tokens", "revoke", "999999")
    assert missing.exit_code == 1 and missing.output.startswith("error (id): no token with id 999999")

    users_out = run("users", "list").output
    assert re.search(r"cli_sec_a\s+admin\s+enabled", users_out)
    disabled = run("users", "disable", "cli_sec_a")
    assert disabled.exit_code == 0 and "disabled" in disabled.output
    assert re.search(r"cli_sec_a\s+admin\s+disabled", run("users", "list").output)
    assert run("users", "disable", "cli_sec_a").exit_code == 1  # already disabled
    assert run("users", "enable", "cli_sec_a").exit_code == 0
    assert run("users", "enable", "cli_sec_nobody").output.startswith("error (username): no user")
    changed = run("users", "password", "cli_sec_a", "--password", "another long one")
    assert changed.exit_code == 0, changed.output

    with engine.begin() as conn:
        actions = conn.execute(text(
            "SELECT action FROM audit_log WHERE target_id = 'cli_sec_a' OR "
            "(action = 'token.revoke' AND target_id = :t) ORDER BY id"), {"t": str(token_id)}).scalars().all()
    assert actions == ["user.add", "token.create", "token.revoke", "user.disable", "user.enable",
                       "user.password"]

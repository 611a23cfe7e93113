"""A village someone else is editing, in /planner in the system Chromium with the network closed:
the lock is said in the page's language with its holder's name, an administrator takes it over
(audited) and is told so in that language, and a lock that changes hands later (ours lapsed and
someone took the village, or theirs ended) is said at the next look."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from geo import audit, db, users
from tests.browser import login, open_page, wait_for

pytestmark = pytest.mark.browser
HOLDER = "lock_holder"
SAID = {"zh": ("正在编辑本村", "已解除 lock_holder 的锁定", "您对本村的锁定已过期", "lock_holder 已不再编辑本村"),
        "en": ("is editing this village since", "The lock of lock_holder is released", "Your lock on this village lapsed",
               "lock_holder is no longer editing this village")}
# Two English words in a row: a sentence left untranslated (a name on its own is not one).
SENTENCE = re.compile(r"[A-Za-z]{2,}[ \-][A-Za-z]{2,}")


@pytest.fixture()
def locked_village(engine, demo):
    """A demo village whose lock another planner holds: (township, village)."""
    with db.session_scope(engine) as s:
        users.add_user(s, audit.Actor("test"), HOLDER, "planner", password="holder-pass-1",
                       scopes=["411103"], replace=True)
        township, village = s.execute(text("""
            SELECT t.code, v.code FROM areas v JOIN areas t ON t.id = v.parent_id
             WHERE v.level = 3 AND v.code LIKE '411103%'
               AND EXISTS (SELECT 1 FROM areas g WHERE g.parent_id = v.id)
             ORDER BY v.code LIMIT 1""")).one()
        s.execute(text("DELETE FROM area_locks WHERE area_id = (SELECT id FROM areas WHERE code = :v)"),
                  {"v": village})
        s.execute(text("""
            INSERT INTO area_locks (area_id, user_id, username, acquired_at, expires_at)
            SELECT a.id, u.id, u.username, now(), now() + interval '10 minutes'
              FROM areas a, users u WHERE a.code = :v AND u.username = :u"""), {"v": village, "u": HOLDER})
    yield township, village
    with db.session_scope(engine) as s:
        s.execute(text("DELETE FROM area_locks WHERE area_id = (SELECT id FROM areas WHERE code = :v)"),
                  {"v": village})
        s.execute(text("DELETE FROM users WHERE username = :u"), {"u": HOLDER})


@pytest.mark.parametrize("lang", ("zh", "en"))
def test_someone_elses_lock_is_said_in_the_pages_language_and_taken_over(lang, live_server, browser, browser_user,
                                                                         locked_village, engine, artifacts):
    township, village = locked_village
    base = live_server(BASEMAP="none")
    external, errors = [], []
    page = open_page(browser, base, external, errors)
    held, released, lapsed, ended = SAID[lang]
    try:
        login(page, base, *browser_user)
        page.goto(f"{base}/planner?lang={lang}")
        wait_for(page, "document.body.dataset.ready === '1'", timeout=20000)
        page.select_option("#township-select", township)
        wait_for(page, f"document.querySelector('#village-select option[value=\"{village}\"]')", timeout=10000)
        page.select_option("#village-select", village)
        wait_for(page, f"document.body.dataset.village === '{village}'", timeout=15000)
        wait_for(page, "document.querySelector('#lock-state.theirs')", timeout=10000)
        said = page.inner_text("#lock-state")
        assert HOLDER in said and held in said, said
        if lang == "zh":
            assert not SENTENCE.search(said.replace(HOLDER, "")), said
        page.screenshot(path=str(artifacts / f"planner-lock-{lang}.png"))

        # The administrator takes the lock over: audited, and said in the page's language.
        assert page.is_visible("#lock-override")
        page.click("#lock-override")
        wait_for(page, "document.querySelector('#lock-state.mine') && document.querySelector('#message.ok')",
                 timeout=10000)
        told = page.inner_text("#message")
        assert released in told, told
        if lang == "zh":
            assert not SENTENCE.search(told.replace(HOLDER, "")), told
        assert page.is_hidden("#lock-override")

        # Our lock lapses and the other planner takes the village: the next look says so …
        with db.session_scope(engine) as s:
            s.execute(text("""UPDATE area_locks SET user_id = u.id, username = u.username FROM users u
                               WHERE u.username = :u
                                 AND area_id = (SELECT id FROM areas WHERE code = :v)"""),
                      {"u": HOLDER, "v": village})
        page.evaluate("anwangTest.planner.takeLock()")
        wait_for(page, "document.querySelector('#message.conflict') && document.querySelector('#lock-state.theirs')",
                 timeout=10000)
        assert lapsed in page.inner_text("#message") and HOLDER in page.inner_text("#message")
        # … and when they are done, the village is ours again.
        with db.session_scope(engine) as s:
            s.execute(text("DELETE FROM area_locks WHERE area_id = (SELECT id FROM areas WHERE code = :v)"),
                      {"v": village})
        page.evaluate("anwangTest.planner.takeLock()")
        wait_for(page, "document.querySelector('#message.ok') && document.querySelector('#lock-state.mine')",
                 timeout=10000)
        assert ended in page.inner_text("#message")
    except Exception:
        page.screenshot(path=str(artifacts / f"planner-lock-{lang}-failure.png"))
        raise
    finally:
        page.context.close()
    assert external == [] and errors == []

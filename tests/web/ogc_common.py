"""Shared pieces of the OGC API – Features tests: API tokens for test users, and a small world on
the `tiny` region with incidents and 三零 subjects inside and outside subtree TZ1."""
from __future__ import annotations

from sqlalchemy import text

from geo import audit, users

SENSITIVE_IN = (10.0012345, 10.0023456)     # exact point of the sensitive incident in TZ1A1
SENSITIVE_OUT = (10.0345678, 10.0356789)    # … and of the one in TZ2B2


def token(session, make_user, role: str, scope: str | None = None) -> dict:
    """Headers with a new API token of a new user of `role` (scoped to `scope`)."""
    name, _ = make_user(role, scope)
    return {"Authorization": f"Bearer {users.create_token(session, audit.Actor('test'), name)}"}


def add_world(session) -> dict:
    """Incidents and entities in and out of TZ1 (the tiny region must be loaded); their ids."""
    ids = {}
    rows = (("s_in", "TZ1A1", *SENSITIVE_IN, True, "秘密地址甲", "dispute", 3),
            ("p_in", "TZ1A2", 10.015, 10.005, False, "翠湖路2号", "accident", 1),
            ("p_out", "TZ2B1", 10.025, 10.025, False, "望江路9号", "dispute", 2),
            ("s_out", "TZ2B2", *SENSITIVE_OUT, True, "秘密地址乙", "petition", 4))
    for key, code, lon, lat, sensitive, address, category, severity in rows:
        ids[key] = session.execute(text("""
            INSERT INTO incidents (category, severity, occurred_at, geom, grid_id, area_id, sensitive,
                                   address, reporter_name, description, district_code)
            VALUES (:cat, :sev, TIMESTAMPTZ '2026-11-01 09:00+08' + :n * interval '1 day',
                    ST_SetSRID(ST_MakePoint(:x, :y), 4326), (SELECT id FROM areas WHERE code = :c),
                    (SELECT id FROM areas WHERE code = :c), :s, :a, '保密人', '测试事件', 'TZ')
            RETURNING id"""), {"cat": category, "sev": severity, "n": len(ids), "x": lon, "y": lat,
                               "c": code, "s": sensitive, "a": address}).scalar_one()
    for key, code, lon, lat in (("e_in", "TZ1A1", 10.004, 10.004), ("e_out", "TZ2B1", 10.024, 10.024)):
        ids[key] = session.execute(text("""
            INSERT INTO entities (name, kind, area_id, geom, address, compliant)
            VALUES (:n, 'enterprise', (SELECT id FROM areas WHERE code = :c),
                    ST_SetSRID(ST_MakePoint(:x, :y), 4326), :n, true) RETURNING id"""),
            {"n": f"测试企业{code}", "c": code, "x": lon, "y": lat}).scalar_one()
    session.flush()
    return ids


def get_json(client, url: str, headers: dict, status: int = 200):
    """GET `url` and return its JSON body, asserting the status."""
    response = client.get(url, headers=headers)
    assert response.status_code == status, (url, response.status_code, response.get_data(as_text=True)[:300])
    return response.get_json()

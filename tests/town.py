"""The `tiny` boxes and a hand-made gazetteer on them: Chinese names, a road with door numbers, 小区 with
buildings, POIs, village groups and one enterprise — small enough to reason about in a test.

    TZ 新安区
    ├── TZ1 河东街道 (west half)   ├── TZ1A 玉泉社区 (south): grids 第1网格 (west), 第2网格 (east)
    │                             └── TZ1B 清河社区 (north): grids 第1网格, 第2网格
    └── TZ2 柳桥镇 (east half)     ├── TZ2A 柳南村 (south): grids 一组网格, 二组网格
                                  └── TZ2B 柳东村 (north): grids 一组网格, 二组网格

翠湖路 runs north–south at 10.015°E through both 河东 communities; odd doors on its west side, even
on its east, 0.0009° (≈ 100 m) apart going north; 7号 is missing (for interpolation). 望江路 runs
west–east at 10.03°N through both townships.
"""
from __future__ import annotations

from sqlalchemy import text

NAMES = {
    "TZ": "新安区", "TZ1": "河东街道", "TZ2": "柳桥镇",
    "TZ1A": "玉泉社区", "TZ1B": "清河社区", "TZ2A": "柳南村", "TZ2B": "柳东村",
    "TZ1A1": "玉泉社区第1网格", "TZ1A2": "玉泉社区第2网格", "TZ1B1": "清河社区第1网格",
    "TZ1B2": "清河社区第2网格", "TZ2A1": "柳南村一组网格", "TZ2A2": "柳南村二组网格",
    "TZ2B1": "柳东村一组网格", "TZ2B2": "柳东村二组网格",
}
OFFICIAL = {"TZ1A": "玉泉社区居民委员会", "TZ1B": "清河社区居民委员会", "TZ2A": "柳南村民委员会",
            "TZ2B": "柳东村民委员会"}
ROAD_LON = 10.015
DOOR_STEP = 0.0009
MISSING_DOOR = 7


def add_tiny(session) -> str:
    """Insert the `tiny` region into `session`'s database; return its root code."""
    def add(code, level, parent, x0, y0, x1, y1, households=None):
        return session.execute(text(
            "INSERT INTO areas (code, name, level, parent_id, geom, households, population) VALUES "
            "(:c, :n, :l, (SELECT id FROM areas WHERE code = :p), "
            "ST_Multi(ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)), :h, :pop) RETURNING id"),
            {"c": code, "n": f"测试{code}", "l": level, "p": parent, "x0": x0, "y0": y0,
             "x1": x1, "y1": y1, "h": households, "pop": households and households * 3}).scalar_one()

    add("TZ", 1, None, 10.0, 10.0, 10.04, 10.04)
    for ti, (tx0, tx1) in enumerate(((10.0, 10.02), (10.02, 10.04)), start=1):
        t = f"TZ{ti}"
        add(t, 2, "TZ", tx0, 10.0, tx1, 10.04)
        for vi, (vy0, vy1) in zip("AB", ((10.0, 10.02), (10.02, 10.04))):
            v = f"{t}{vi}"
            add(v, 3, t, tx0, vy0, tx1, vy1)
            mid = (tx0 + tx1) / 2
            add(f"{v}1", 4, v, tx0, vy0, mid, vy1, 300)
            add(f"{v}2", 4, v, mid, vy0, tx1, vy1, 420)
    session.flush()
    return "TZ"


def door_point(n: int) -> tuple[float, float]:
    """Where door n of 翠湖路 stands (odd west, even east, numbered northwards)."""
    k = (n + 1) // 2
    return (ROAD_LON - 0.0001 if n % 2 else ROAD_LON + 0.0001, 10.001 + k * DOOR_STEP)


def place(session, name, kind, area, wkt, parent=None, address=None, attrs=None) -> int:
    import json

    return session.execute(text(
        "INSERT INTO places (name, kind, area_id, parent_id, geom, address, attrs) VALUES "
        "(:n, :k, (SELECT id FROM areas WHERE code = :a), :p, ST_GeomFromText(:w, 4326), :addr, "
        "CAST(:attrs AS jsonb)) RETURNING id"),
        {"n": name, "k": kind, "a": area, "p": parent, "w": wkt, "addr": address,
         "attrs": json.dumps(attrs or {}, ensure_ascii=False)}).scalar_one()


def grid_of(lon: float, lat: float) -> str:
    """The tiny grid code holding a point strictly inside one grid."""
    t = "1" if lon < 10.02 else "2"
    v = "A" if lat < 10.02 else "B"
    half = 10.01 if t == "1" else 10.03
    return f"TZ{t}{v}{'1' if lon < half else '2'}"


def build(session) -> dict:
    """Name the tiny areas and add the places; return ids by key."""
    for code, name in NAMES.items():
        session.execute(text("UPDATE areas SET name = :n, attrs = CAST(:a AS jsonb) WHERE code = :c"),
                        {"n": name, "c": code,
                         "a": f'{{"official_name": "{OFFICIAL[code]}"}}' if code in OFFICIAL else None})
    ids = {}
    ids["翠湖路"] = place(session, "翠湖路", "road", "TZ1",
                         f"LINESTRING({ROAD_LON} 10.0005, {ROAD_LON} 10.0395)",
                         address="新安区河东街道翠湖路")
    for n in range(1, 61):
        if n == MISSING_DOOR:
            continue
        lon, lat = door_point(n)
        ids[f"翠湖路{n}号"] = place(session, f"{n}号", "door", grid_of(lon, lat),
                                  f"POINT({lon} {lat})", parent=ids["翠湖路"],
                                  address=f"新安区河东街道翠湖路{n}号", attrs={"number": n})
    ids["望江路"] = place(session, "望江路", "road", "TZ", "LINESTRING(10.0005 10.03, 10.0395 10.03)",
                         address="新安区望江路")
    for n in range(1, 41):
        lon = 10.001 + ((n + 1) // 2) * 0.0018
        lat = 10.0299 if n % 2 else 10.0301
        ids[f"望江路{n}号"] = place(session, f"{n}号", "door", grid_of(lon, lat), f"POINT({lon} {lat})",
                                  parent=ids["望江路"], address=f"新安区望江路{n}号",
                                  attrs={"number": n})
    ids["晨曦花园"] = place(session, "晨曦花园", "compound", "TZ1A2",
                          "POLYGON((10.016 10.005, 10.019 10.005, 10.019 10.008, 10.016 10.008, "
                          "10.016 10.005))", parent=ids["翠湖路12号"],
                          address="新安区河东街道翠湖路12号晨曦花园")
    for n in range(1, 7):
        ids[f"晨曦花园{n}号楼"] = place(session, f"{n}号楼", "building", "TZ1A2",
                                     f"POINT({10.0165 + 0.0005 * n} 10.0065)", parent=ids["晨曦花园"],
                                     address=f"新安区河东街道翠湖路12号晨曦花园{n}号楼",
                                     attrs={"number": n})
    ids["枫林家园"] = place(session, "枫林家园", "compound", "TZ1B1",
                          "POLYGON((10.002 10.022, 10.006 10.022, 10.006 10.026, 10.002 10.026, "
                          "10.002 10.022))", address="新安区河东街道清河社区枫林家园")
    for n in range(1, 5):
        ids[f"枫林家园{n}号楼"] = place(session, f"{n}号楼", "building", "TZ1B1",
                                     f"POINT({10.0025 + 0.0008 * n} 10.024)", parent=ids["枫林家园"],
                                     address=f"新安区河东街道清河社区枫林家园{n}号楼",
                                     attrs={"number": n})
    ids["清河医院"] = place(session, "清河医院", "poi", "TZ1B2", "POINT(10.017 10.035)",
                            address="新安区河东街道清河社区清河医院")
    ids["柳桥镇人民政府"] = place(session, "柳桥镇人民政府", "poi", "TZ2A1", "POINT(10.025 10.015)",
                              address="新安区柳桥镇人民政府")
    for code, village, group, lon, lat in (("TZ2A1", "柳南村", "一组", 10.024, 10.008),
                                           ("TZ2A2", "柳南村", "二组", 10.035, 10.008),
                                           ("TZ2B1", "柳东村", "一组", 10.024, 10.028),
                                           ("TZ2B2", "柳东村", "二组", 10.035, 10.028)):
        ids[village + group] = place(session, village + group, "group", code, f"POINT({lon} {lat})",
                                     address=f"新安区柳桥镇{village}{group}",
                                     attrs={"group": group})
    # A second, far-away jurisdiction where lon and lat differ enough that swapping them matters.
    session.execute(text(
        "INSERT INTO areas (code, name, level, geom) VALUES ('TS', '测试远区', 1, "
        "ST_Multi(ST_MakeEnvelope(30.0, 40.0, 30.04, 40.04, 4326)))"))
    ids["白鹭超市"] = session.execute(text(
        "INSERT INTO entities (name, kind, area_id, geom, address) VALUES ('白鹭超市', 'enterprise', "
        "(SELECT id FROM areas WHERE code = 'TZ1A1'), ST_SetSRID(ST_MakePoint(10.006, 10.006), 4326), "
        "'新安区河东街道翠湖路3号') RETURNING id")).scalar_one()
    session.flush()
    return ids


def area_id(session, code: str) -> int:
    return session.execute(text("SELECT id FROM areas WHERE code = :c"), {"c": code}).scalar_one()

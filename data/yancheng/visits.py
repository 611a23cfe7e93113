"""Generate the grid workers' 走访 and the village records: a household registry matching every
grid's household count, visits that reproduce the district's figures (6万余户 visited, 13万余人次)
within the demo's 12 months, a 回访 after every resolved matter, each grid's monthly visit plan,
龙塔街道's "510" round-table meetings (32 meetings, 106 problems solved, 83 disputes settled) and
裴城镇's 三色 village logbooks (60余 disputes settled, 100余 good deeds).

Households, their members, names, phones and ID numbers are invented; an ID number has the
district's region code, a plausible birth date and a valid check digit.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import shapely

from geo.visits import seed
from geo.visits.coverage import default_plan

from .period import PERIOD_END, PERIOD_START, TZ, months
from .reference import DISTRICT_CODE
from .world import World

# How many more than "6万余" and "13万余" the demo lands on (the article rounds down).
HOUSEHOLDS_TARGET = seed.HOUSEHOLDS_VISITED + 1_650
PERSON_VISITS_TARGET = seed.PERSON_VISITS + 1_300
MET_EXTRA = 0.55                                # residents met besides the first (Poisson mean)
KINDS = {"home": .74, "safety": .16, "outreach": .10}  # besides the 回访 of every matter
VISIT_HOURS = [0, 0, 0, 0, 0, 0, 0, 1, 6, 10, 10, 7, 2, 2, 7, 9, 9, 6, 3, 2, 0, 0, 0, 0]
MEMBERS = [.10, .22, .28, .22, .12, .06]        # 1 … 6 people per household
NOTES = {"home": ["了解家庭生产生活情况", "宣讲平安建设知识", "了解邻里关系", "关心独居老人生活",
                  "核实家庭人口信息"],
         "safety": ["检查燃气使用安全", "检查电动车充电", "提醒防火防盗", "检查房屋安全"],
         "outreach": ["宣传防范电信诈骗", "宣传扫黑除恶", "宣传法律援助", "宣传“三零”创建"],
         "follow_up": ["回访当事人，对处理结果满意", "回访当事人，矛盾未反复", "回访确认隐患已整改",
                       "回访当事人，表示认可"]}
MEETING_TOWNSHIP = f"{DISTRICT_CODE}002"        # 龙塔街道
LOGBOOK_TOWNSHIP = f"{DISTRICT_CODE}103"        # 裴城镇
MEETING_TOPICS = ["老旧小区停车难", "楼道堆物与消防通道", "小区路灯维修", "垃圾清运不及时",
                  "邻里噪音纠纷", "物业费收缴与服务", "雨污管网改造", "电动车充电桩安装",
                  "无主楼院管理", "老年人助餐点设置"]
RED = ["救助落水儿童", "孝老爱亲", "拾金不昧", "捐资修路", "义务照料孤寡老人", "获评“好媳妇”",
       "见义勇为", "热心调解邻里纠纷"]
BLACK = ["酒后争吵打架", "宅基地边界争执", "占道堆放柴草", "高价彩礼纠纷", "赡养老人推诿",
         "邻里因排水吵架", "私搭乱建"]
BLUE = ["婚礼", "丧事简办", "新生儿出生", "考取大学", "村道硬化完工", "村史馆落成"]


def build(world: World) -> None:
    """Households, visits, 回访, plans, meetings and logbooks, each from its own generator."""
    _households(world, world.rng("households"))
    _visits(world, world.rng("visits"))
    _follow_ups(world, world.rng("follow-ups"))
    _plans(world)
    _meetings(world, world.rng("meetings"))
    _logbooks(world, world.rng("logbooks"))


# -- households -----------------------------------------------------------------------------------
ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
ID_CHECK = "10X98765432"


def _id_numbers(bodies: list[str]) -> list[str]:
    """18-character ID numbers: each 17-digit body with its ISO 7064 MOD 11-2 check character."""
    digits = np.frombuffer("".join(bodies).encode("ascii"), dtype=np.uint8).reshape(-1, 17) - 48
    checks = (digits.astype(np.int64) @ ID_WEIGHTS) % 11
    return [b + ID_CHECK[c] for b, c in zip(bodies, checks.tolist(), strict=True)]


def _points_in(geom, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points uniformly inside a polygon (lon/lat), by rejection from its bounding box."""
    minx, miny, maxx, maxy = geom.bounds
    out = np.empty((0, 2))
    while len(out) < n:
        xy = np.column_stack([rng.uniform(minx, maxx, 2 * n + 16), rng.uniform(miny, maxy, 2 * n + 16)])
        out = np.vstack([out, xy[shapely.contains_xy(geom, xy[:, 0], xy[:, 1])]])
    return out[:n]


def _households(world: World, rng: np.random.Generator) -> None:
    surnames = world.names["surnames"]
    given = world.names["given_male"] + world.names["given_female"]
    for g in sorted(world.grids, key=lambda g: g.code):
        n = g.households
        xy = _points_in(g.geom, n, rng).tolist()
        s = rng.integers(len(surnames), size=n).tolist()
        a = rng.integers(len(given), size=n).tolist()
        b = rng.integers(len(given), size=n).tolist()
        two = (rng.random(n) < 0.3).tolist()
        members = (rng.choice(6, size=n, p=MEMBERS) + 1).tolist()
        phones = rng.integers(0, 10 ** 9, size=n).tolist()
        prefix = rng.choice(["13", "15", "18", "19"], size=n).tolist()
        born = np.datetime64("1950-01-01") + rng.integers(0, 365 * 50, size=n)
        births = np.char.replace(np.datetime_as_string(born, unit="D"), "-", "").tolist()
        serial = rng.integers(0, 1000, size=n).tolist()
        ids = _id_numbers([f"{DISTRICT_CODE}{d}{k:03d}" for d, k in zip(births, serial, strict=True)])
        for k in range(n):
            world.households.append({
                "grid_code": g.code, "number": f"{k + 1:04d}",
                "head_name": surnames[s[k]] + given[a[k]] + ("" if two[k] else given[b[k]]),
                "phone": f"{prefix[k]}{phones[k]:09d}", "id_number": ids[k], "members": members[k],
                "address": f"{g.name}{k + 1}号", "lon": xy[k][0], "lat": xy[k][1]})


# -- visits ---------------------------------------------------------------------------------------
def _moments(rng: np.random.Generator, n: int) -> list[datetime]:
    """n local moments over the demo's months, in working hours."""
    days = (PERIOD_END - PERIOD_START).days + 1
    day = rng.integers(0, days, size=n)
    hours = np.array(VISIT_HOURS, float)
    hour = rng.choice(24, size=n, p=hours / hours.sum())
    minute = rng.integers(0, 60, size=n)
    return [PERIOD_START + timedelta(days=int(d), hours=int(h), minutes=int(m))
            for d, h, m in zip(day, hour, minute, strict=True)]


def _visits(world: World, rng: np.random.Generator) -> None:
    """Visit HOUSEHOLDS_TARGET households once each, then visit some of them again until the
    residents met add up to PERSON_VISITS_TARGET."""
    homes = world.households
    members = np.array([h["members"] for h in homes])
    first = np.sort(rng.choice(len(homes), size=HOUSEHOLDS_TARGET, replace=False))
    again = rng.choice(first, size=HOUSEHOLDS_TARGET)
    plan = np.concatenate([first, again])
    met = np.minimum(members[plan], 1 + rng.poisson(MET_EXTRA, size=len(plan)))
    # Enough return visits that the residents met reach the target (the first visits alone do not).
    n = HOUSEHOLDS_TARGET + int(np.searchsorted(np.cumsum(met[HOUSEHOLDS_TARGET:]),
                                                PERSON_VISITS_TARGET - met[:HOUSEHOLDS_TARGET].sum())) + 1
    plan, met = plan[:n], met[:n]
    kinds = rng.choice(list(KINDS), size=n, p=list(KINDS.values()))
    who = rng.random(n)
    note = rng.integers(0, 100, size=n)
    for i, people, kind, w, at, nt in zip(plan.tolist(), met.tolist(), kinds.tolist(), who,
                                          _moments(rng, n), note, strict=True):
        h = homes[i]
        staff = world.staff_by_grid[h["grid_code"]]
        person = staff["worker" if w < 0.8 else "leader"]["person_key"]
        world.visits.append({"kind": kind, "household": i, "incident": None,
                             "grid_code": h["grid_code"], "lon": h["lon"], "lat": h["lat"],
                             "occurred_at": at, "people": people, "person_key": person,
                             "notes": NOTES[kind][nt % len(NOTES[kind])]})


def _follow_ups(world: World, rng: np.random.Generator) -> None:
    """A 回访 after every resolved matter: before it closed, or since it was resolved."""
    for n, inc in enumerate(world.incidents):
        if inc["status"] not in ("followed_up", "closed") or inc["resolved_at"] is None:
            continue
        resolved = inc["resolved_at"]
        end = inc["closed_at"] or PERIOD_END
        span = max(60.0, (end - resolved).total_seconds())
        at = resolved + timedelta(seconds=float(rng.uniform(0.2, 0.9)) * span)
        staff = world.staff_by_grid.get(inc["grid_code"])
        world.visits.append({"kind": "follow_up", "household": None, "incident": n,
                             "grid_code": inc["grid_code"], "lon": inc["geom"].x, "lat": inc["geom"].y,
                             "occurred_at": at.replace(microsecond=0), "people": 1,
                             "person_key": staff["worker"]["person_key"] if staff else None,
                             "notes": NOTES["follow_up"][n % len(NOTES["follow_up"])]})


def _plans(world: World) -> None:
    """Each grid's plan for each month: the default share of its households (geo.visits.coverage)."""
    for g in sorted(world.grids, key=lambda g: g.code):
        for start, _ in months():
            world.visit_plans.append({"grid_code": g.code, "month": start.date(),
                                      "households": default_plan(g.households)})


# -- village records ------------------------------------------------------------------------------
def _spread(total: int, n: int, rng: np.random.Generator) -> list[int]:
    """Split total into n non-negative parts, roughly even."""
    cuts = np.sort(rng.integers(0, total + 1, size=n - 1))
    parts = np.diff(np.concatenate([[0], cuts, [total]]))
    return [int(p) for p in parts]


def _meetings(world: World, rng: np.random.Generator) -> None:
    """龙塔街道's communities hold the "510" meeting on the 10th of each month until the article's
    32 are reached, each with a site inspection; problems and disputes as the article counts them."""
    town = world.areas[MEETING_TOWNSHIP]
    communities = sorted(town.children)[:3]
    slots = [(start.date().replace(day=seed.MEETING_DAY), c) for start, _ in months() for c in communities]
    slots = sorted(slots)[-seed.MEETINGS:]
    solved = _spread(seed.PROBLEMS_SOLVED - seed.MEETINGS, seed.MEETINGS, rng)
    settled = _spread(seed.MEETING_DISPUTES_SETTLED, seed.MEETINGS, rng)
    disputes = {}
    for n, inc in enumerate(world.incidents):
        if inc["category"] == "dispute" and inc["grid_code"]:
            disputes.setdefault(world.village_of(inc["grid_code"]).code, []).append(n)
    for (held, code), s, d in zip(slots, solved, settled, strict=True):
        since = datetime(held.year, held.month, 1, tzinfo=TZ) - timedelta(days=31)
        until = datetime(held.year, held.month, held.day, tzinfo=TZ)
        linked = [n for n in disputes.get(code, [])
                  if since <= world.incidents[n]["occurred_at"] < until][:max(1, d)]
        topic = MEETING_TOPICS[int(rng.integers(len(MEETING_TOPICS)))]
        world.meetings.append({
            "area_code": code, "held_on": held, "topic": topic,
            "participants": {"party_member": int(rng.integers(2, 5)), "resident": int(rng.integers(3, 7)),
                             "grid_worker": int(rng.integers(1, 4)), "grid_leader": 1,
                             "official": int(rng.integers(1, 3)), "deputy": int(rng.integers(0, 2)),
                             "department": int(rng.integers(0, 3))},
            "problems_raised": s + 1 + int(rng.integers(0, 2)), "problems_solved": s + 1,
            "disputes_settled": d, "site_inspection": True, "incidents": linked,
            "outcomes": f"议定{topic}整改方案，解决问题{s + 1}个，化解矛盾{d}个，实地巡查一次"})


def _logbooks(world: World, rng: np.random.Generator) -> None:
    """裴城镇's villages keep the red, black and blue books through the demo's calendar year."""
    villages = sorted(world.areas[LOGBOOK_TOWNSHIP].children)
    year_start = datetime(PERIOD_END.year, 1, 1, tzinfo=TZ)
    span = (PERIOD_END - year_start).days
    counts = {"red": seed.LOGBOOK_GOOD_DEEDS + 4, "black": seed.LOGBOOK_DISPUTES_SETTLED + 14,
              "blue": 3 * len(villages)}
    for colour, words in (("red", RED), ("black", BLACK), ("blue", BLUE)):
        n = counts[colour]
        settled = set(rng.choice(n, size=seed.LOGBOOK_DISPUTES_SETTLED + 2, replace=False).tolist()) \
            if colour == "black" else set()
        for k in range(n):
            village = villages[int(rng.integers(len(villages)))]
            day = (year_start + timedelta(days=int(rng.integers(0, span + 1)))).date()
            title = words[int(rng.integers(len(words)))]
            world.logbook.append({"area_code": village, "colour": colour, "recorded_on": day,
                                  "title": title, "resolved_dispute": k in settled,
                                  "body": f"{world.areas[village].name}：{title}"
                                          + ("，经调解已化解" if k in settled else "")})


def person_visits(visits: list[dict]) -> int:
    """人次: the residents met on the household visits."""
    return sum(v["people"] for v in visits if v["household"] is not None)


def households_visited(visits: list[dict]) -> int:
    """How many households were visited at least once."""
    return len({v["household"] for v in visits if v["household"] is not None})


"""Generate 20,000 incidents over the 12 months, with planted hot spots and their whole lifecycle."""
from __future__ import annotations

import bisect
import itertools
import math
from datetime import datetime, timedelta

import numpy as np
import shapely

from .coordinates import wgs84_lonlat
from .names import zh_number
from .period import PERIOD_END, months
from .reference import DISTRICT_NAME
from .world import Area, World, apportion

INCIDENTS = 20_000

CATEGORY_SHARE = {"dispute": 0.30, "hazard": 0.24, "accident": 0.18, "criminal": 0.18, "petition": 0.10}
# subtype: (weight in town, weight in the countryside, short descriptions)
SUBTYPES = {
    "petition": {
        "征地拆迁": (1, 3, ["反映征地补偿款发放问题", "对拆迁安置方案有异议"]),
        "问题楼盘办证": (3, 0, ["购房多年未办理房产证", "反映楼盘逾期交房"]),
        "社保待遇": (2, 2, ["咨询养老保险待遇核定", "反映低保资格认定问题"]),
        "涉法涉诉": (1, 1, ["对判决执行进度不满", "反映案件久拖未决"]),
        "村务公开": (0, 2, ["要求公开村集体收支", "反映村务监督问题"]),
        "环境污染投诉": (2, 1, ["反映工厂夜间噪声扰民", "反映企业排放异味"]),
    },
    "accident": {
        "交通事故": (6, 5, ["两车刮擦无人员受伤", "电动车与行人相撞一人轻伤", "货车与三轮车相撞"]),
        "火灾": (1, 1, ["居民楼电动车起火已扑灭", "秸秆焚烧引发火情"]),
        "生产安全事故": (1, 1, ["车间工人操作不慎受伤", "工地高处坠物"]),
        "燃气事故": (1, 0, ["餐馆燃气泄漏已处置", "居民家中燃气软管老化漏气"]),
        "溺水": (0, 1, ["坑塘边儿童落水获救"]),
        "触电": (0, 1, ["农户私拉电线触电受伤"]),
    },
    "criminal": {
        "盗窃": (5, 4, ["电动车被盗", "店铺夜间被撬", "农机具被盗"]),
        "电信诈骗": (4, 2, ["冒充客服诈骗", "刷单返利诈骗"]),
        "故意伤害": (1, 1, ["酒后斗殴致一人受伤"]),
        "寻衅滋事": (1, 1, ["在饭店无故滋事"]),
        "抢夺": (1, 0, ["路边手机被抢"]),
        "赌博": (0, 1, ["聚众赌博被举报"]),
    },
    "dispute": {
        "邻里纠纷": (4, 4, ["邻里因噪声发生争执", "邻里因排水问题发生矛盾"]),
        "婚姻家庭纠纷": (2, 3, ["夫妻因家庭琐事争吵", "赡养老人问题发生矛盾"]),
        "物业纠纷": (3, 0, ["业主与物业因收费发生争执", "小区停车位纠纷"]),
        "消费纠纷": (2, 0, ["顾客与商户因退货发生争执"]),
        "土地承包纠纷": (0, 3, ["承包地边界争议", "土地流转费用争议"]),
        "宅基地纠纷": (0, 3, ["宅基地界址争议", "建房占用通道引发矛盾"]),
        "劳资纠纷": (2, 1, ["工人讨要拖欠工资", "工伤赔偿争议"]),
        "债务纠纷": (1, 1, ["民间借贷到期未还"]),
    },
    "hazard": {
        "消防隐患": (4, 2, ["楼道堆放杂物", "消防通道被占用"]),
        "电动车违规充电": (3, 1, ["电动车入户充电", "私拉飞线充电"]),
        "燃气隐患": (2, 1, ["餐馆燃气管道老化", "液化气瓶存放不当"]),
        "危房": (1, 2, ["独居老人住房墙体开裂"]),
        "道路隐患": (2, 2, ["路口缺少警示标志", "路面塌陷"]),
        "水利设施隐患": (0, 2, ["沟渠护坡坍塌", "坑塘缺少防护栏"]),
        "食品安全隐患": (1, 1, ["无证经营小作坊"]),
    },
}
HOURLY = {  # relative frequency by hour of day
    "accident": [1, 1, 1, 1, 1, 2, 4, 8, 9, 6, 5, 5, 5, 5, 5, 5, 6, 9, 9, 6, 4, 3, 2, 1],
    "criminal": [4, 4, 4, 3, 2, 2, 2, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 5, 6, 6, 6, 6, 5, 5],
    "dispute": [1, 1, 1, 1, 1, 1, 2, 4, 6, 8, 8, 7, 6, 6, 7, 7, 7, 7, 7, 7, 5, 3, 2, 1],
    "hazard": [0, 0, 0, 0, 0, 1, 2, 4, 8, 10, 10, 8, 5, 6, 8, 9, 8, 6, 3, 2, 1, 1, 0, 0],
    "petition": [0, 0, 0, 0, 0, 0, 1, 3, 9, 10, 10, 6, 2, 4, 9, 9, 8, 5, 1, 0, 0, 0, 0, 0],
}
SEVERITY = {"dispute": [.55, .30, .12, .03], "hazard": [.45, .35, .15, .05],
            "accident": [.50, .30, .15, .05], "criminal": [.35, .35, .22, .08],
            "petition": [.40, .35, .20, .05]}
# (median, log-sigma) in hours: occurrence → report, report → acceptance, acceptance → resolution;
# resolution → close is the follow-up visit (回访). Caps keep the tail plausible.
REPORT_DELAY_H = {"accident": (0.2, 0.6), "criminal": (0.7, 1.0), "dispute": (6, 1.0),
                  "hazard": (12, 1.0), "petition": (72, 0.8)}
ACCEPT_DELAY_H = {"accident": (0.15, 0.5), "criminal": (0.3, 0.6), "dispute": (0.5, 0.8),
                  "hazard": (2, 0.8), "petition": (24, 0.6)}
RESOLVE_H = {"accident": (10, 1.0, 20 * 24), "criminal": (200, 1.2, 180 * 24),
             "dispute": (30, 1.0, 30 * 24), "hazard": (72, 0.9, 60 * 24),
             "petition": (300, 0.6, 60 * 24)}
FOLLOW_UP_H = (72, 0.5, 15 * 24)
RESOLUTION_LEVELS = {  # 组 / 村 / 镇 / 区: most disputes end in the village (小事不出村)
    "dispute": [.52, .33, .12, .03], "hazard": [.15, .40, .35, .10], "petition": [0, .15, .55, .30],
    "accident": [0, 0, .35, .65], "criminal": [0, 0, .70, .30]}
SOURCES = {
    "petition": {"信访窗口": .55, "12345热线": .30, "微信小程序": .15},
    "accident": {"110接警": .70, "12345热线": .10, "网格员上报": .20},
    "criminal": {"110接警": .80, "网格员上报": .10, "微信小程序": .10},
    "dispute": {"网格员上报": .55, "12345热线": .20, "微信小程序": .15, "110接警": .10},
    "hazard": {"网格员上报": .65, "12345热线": .20, "微信小程序": .15},
}
SENSITIVE = {"petition": .12, "criminal": .05, "dispute": .015, "hazard": .005, "accident": .005}
DISPUTE_UNRESOLVED = 0.03  # the article: resolution rate above 96 %
ESCALATED_SHARE = {"petition": 0.02, "criminal": 0.01}
HOTSPOTS = [
    {"name": "龙塔农贸市场", "kind": "persistent", "poi": "龙塔农贸市场", "radius_m": 350, "count": 600,
     "category_mix": {"criminal": .35, "dispute": .35, "hazard": .20, "accident": .10},
     "subtypes": {"criminal": "盗窃", "dispute": "消费纠纷", "hazard": "消防隐患"}},
    {"name": "郾城汽车站周边", "kind": "persistent", "poi": "郾城汽车站", "radius_m": 400, "count": 550,
     "category_mix": {"criminal": .45, "dispute": .25, "accident": .20, "hazard": .10},
     "subtypes": {"criminal": "盗窃", "accident": "交通事故"}},
    {"name": "淞江工业园", "kind": "persistent", "poi": "淞江工业园", "radius_m": 700, "count": 500,
     "category_mix": {"hazard": .40, "accident": .30, "dispute": .30},
     "subtypes": {"dispute": "劳资纠纷", "accident": "生产安全事故"}},
    {"name": "商桥物流园", "kind": "emerging", "poi": "商桥物流园", "radius_m": 900, "count": 550,
     "category_mix": {"accident": .35, "dispute": .35, "petition": .15, "hazard": .15},
     "subtypes": {"accident": "交通事故", "petition": "征地拆迁", "hazard": "道路隐患"}},
    {"name": "孟庙镇旧村改造片区", "kind": "fading", "poi": "孟庙镇旧村改造片区", "radius_m": 800,
     "count": 800, "category_mix": {"petition": .45, "dispute": .45, "criminal": .10},
     "subtypes": {"petition": "征地拆迁", "dispute": "宅基地纠纷"}},
]
MONTHLY = {
    "persistent": [1.0] * 12,
    "emerging": [0.15] * 8 + [1.5, 3.5, 6.0, 8.0],
    # Still hot in the last month but steadily weaker: Esri's "diminishing hot spot".
    "fading": [6.0, 5.7, 5.4, 5.1, 4.8, 4.5, 4.2, 3.9, 3.6, 3.3, 3.0, 2.7],
}


class _Draw:
    """One incident's random numbers, drawn in bulk: uniforms `u` and standard normals `z`."""

    def __init__(self, u: list[float], z: list[float]):
        self.u, self.z = u, z

    def choose(self, i: int, options: dict[str, float]) -> str:
        """Pick a key of `options` with probability proportional to its weight, using u[i]."""
        keys = list(options)
        bounds = list(itertools.accumulate(options.values()))
        return keys[min(bisect.bisect(bounds, self.u[i] * bounds[-1]), len(keys) - 1)]

    def lognormal_h(self, i: int, median: float, sigma: float, cap: float | None = None) -> timedelta:
        """Return a log-normal duration in hours with this median, using z[i], capped."""
        hours = median * math.exp(sigma * self.z[i])
        return timedelta(hours=min(hours, cap) if cap else hours)


def build(world: World) -> None:
    """Create 20,000 incidents over the 12 months to 2026-10-31, with planted hot spots."""
    rng = world.rng("incidents")
    drafts = []
    for spot in HOTSPOTS:
        drafts += _hotspot_drafts(world, rng, spot)
    drafts += _background_drafts(world, rng, INCIDENTS - len(drafts))
    grids, lon, lat = _incident_points(world, rng, drafts)
    u, z = rng.random((len(drafts), 12)).tolist(), rng.normal(size=(len(drafts), 4)).tolist()
    records = [_incident(world, rng, d, g, x, y, _Draw(ui, zi))
               for d, g, x, y, ui, zi in zip(drafts, grids, lon.tolist(), lat.tolist(), u, z)]
    for r, p in zip(records, shapely.points(lon, lat)):
        r["geom"] = p
    _settle_disputes(records, rng)
    records.sort(key=lambda r: (r["reported_at"], r["occurred_at"], r["lon"], r["lat"]))
    serial: dict[int, int] = {}
    for r in records:
        year = r["reported_at"].year
        serial[year] = serial.get(year, 0) + 1
        r["external_id"] = f"YC-{year}-{serial[year]:06d}"
    world.incidents = records


def _hotspot_drafts(world: World, rng: np.random.Generator, spot: dict) -> list[dict]:
    """Draft a hot spot's incidents at gazetteer places weighted by distance from its centre."""
    cx, cy = world.place_xy[f"poi:{spot['poi']}"]
    keys = [k for k in world.place_xy if k.split(":")[0] in ("door", "building", "group", "poi")]
    xy = np.array([world.place_xy[k] for k in keys])
    d = np.hypot(xy[:, 0] - cx, xy[:, 1] - cy)
    near = np.flatnonzero(d <= spot["radius_m"])
    weights = np.exp(-0.5 * (d[near] / (spot["radius_m"] / 2)) ** 2)
    by_key = {p["key"]: p for p in world.places}
    lon, lat = wgs84_lonlat(cx, cy)
    world.hotspots.append({"name": spot["name"], "kind": spot["kind"], "lon": round(float(lon), 7),
                           "lat": round(float(lat), 7), "radius_m": spot["radius_m"],
                           "category_mix": dict(spot["category_mix"])})
    cats = list(spot["category_mix"])
    mix = np.array([spot["category_mix"][c] for c in cats])
    drafts = []
    for month, n in enumerate(apportion(spot["count"], MONTHLY[spot["kind"]], 0)):
        picks = near[rng.choice(len(near), size=n, p=weights / weights.sum())]
        for c, k in zip(rng.choice(len(cats), size=n, p=mix / mix.sum()), picks):
            cat = cats[int(c)]
            drafts.append({"month": month, "category": cat, "place": by_key[keys[int(k)]],
                           "subtype": spot["subtypes"].get(cat), "hotspot": spot["name"]})
    return drafts


def _background_drafts(world: World, rng: np.random.Generator, n: int) -> list[dict]:
    """Draft incidents in proportion to population (more per head in town), mildly seasonal."""
    grids = sorted(world.grids, key=lambda g: g.code)
    w = np.array([g.population * (1.3 if g.urban else 1.0) for g in grids], float)
    pools = [_incident_places(world, g) for g in grids]
    w[[not pool for pool in pools]] = 0.0
    seasonal = [1 + 0.12 * math.cos(2 * math.pi * (m - 8) / 12) for m in range(12)]
    cats = list(CATEGORY_SHARE)
    share = np.array([CATEGORY_SHARE[c] for c in cats])
    drafts = []
    for month, count in enumerate(apportion(n, seasonal, 0)):
        picks = rng.choice(len(grids), size=count, p=w / w.sum())
        kinds = rng.choice(len(cats), size=count, p=share)
        for gi, c, r in zip(picks.tolist(), kinds.tolist(), rng.random(count).tolist()):
            pool = pools[gi]
            drafts.append({"month": month, "category": cats[c], "place": pool[int(r * len(pool))],
                           "subtype": None, "hotspot": None})
    return drafts


def _incident_places(world: World, g: Area) -> list[dict]:
    """List where a grid's incidents are addressed: doors and buildings in town, else groups."""
    places = world.by_grid.get(g.code, {})
    pool = [p for k in (("door", "building") if g.urban else ("group",)) for p in places.get(k, [])]
    return pool or [p for k in sorted(places) for p in places[k]]


def _incident_points(world: World, rng: np.random.Generator, drafts: list[dict]):
    """Put each incident a few metres from its gazetteer place, inside that place's grid."""
    spread = np.array([{"group": 90.0, "poi": 40.0}.get(d["place"]["kind"], 6.0) for d in drafts])
    base = np.array([world.place_xy[d["place"]["key"]] for d in drafts])
    xy = base + rng.normal(0, 1, base.shape) * spread[:, None]
    found = world.grid_at(xy[:, 0], xy[:, 1])
    grids = []
    for i, (d, g) in enumerate(zip(drafts, found)):
        if g is None or g.code != d["place"]["area_code"]:
            xy[i] = base[i]
            g = world.areas[d["place"]["area_code"]]
        grids.append(g)
    lon, lat = wgs84_lonlat(xy[:, 0], xy[:, 1])
    return grids, np.round(lon, 7), np.round(lat, 7)


def _incident(world: World, rng: np.random.Generator, draft: dict, grid: Area, lon: float,
              lat: float, draw: _Draw) -> dict:
    """Turn a draft (month, category, place) into a full incident record."""
    cat, place = draft["category"], draft["place"]
    subtypes = SUBTYPES[cat]
    subtype = draft["subtype"] or draw.choose(0, {k: v[0 if grid.urban else 1] for k, v in subtypes.items()})
    severity = int(draw.choose(1, dict(zip("1234", SEVERITY[cat]))))
    times = _timeline(draw, cat, draft["month"], severity)
    source = draw.choose(5, SOURCES[cat])
    reporter = _reporter(world, rng, grid, source)
    status, level = _status(draw, cat, severity, times)
    texts = subtypes[subtype][2]
    return {
        "external_id": None, "category": cat, "subtype": subtype, "severity": severity,
        "status": status, **times, "resolution_level": level,
        "address": _address_text(rng, place, place["address"]), "lon": lon, "lat": lat,
        "geom": None, "grid_code": grid.code, "source": source,
        "sensitive": draw.u[6] < SENSITIVE[cat], "reporter_name": reporter[0],
        "reporter_phone": reporter[1], "description": texts[int(draw.u[7] * len(texts))],
        "attrs": {"place_key": place["key"], "address_canonical": place["address"],
                  "hotspot": draft["hotspot"]},
    }


def _timeline(draw: _Draw, cat: str, month: int, severity: int) -> dict:
    """Draw occurrence, report, acceptance, resolution and close times (before the cut-off)."""
    start, days = months()[month]
    hour = int(draw.choose(2, {str(h): w for h, w in enumerate(HOURLY[cat])}))
    occurred = start + timedelta(days=int(draw.u[3] * days), hours=hour, seconds=int(draw.u[4] * 3600))
    reported = occurred + draw.lognormal_h(0, *REPORT_DELAY_H[cat])
    if reported > PERIOD_END:
        shift = reported - PERIOD_END + timedelta(minutes=1 + int(draw.u[11] * 120))
        occurred, reported = occurred - shift, reported - shift
    accepted = reported + draw.lognormal_h(1, *ACCEPT_DELAY_H[cat])
    median, sigma, cap = RESOLVE_H[cat]
    resolved = accepted + draw.lognormal_h(2, median * (1 + 0.4 * (severity - 1)), sigma, cap)
    closed = resolved + draw.lognormal_h(3, *FOLLOW_UP_H)
    return {"occurred_at": _second(occurred), "reported_at": _second(reported),
            "accepted_at": _second(accepted), "resolved_at": _second(resolved),
            "closed_at": _second(closed)}


def _second(t: datetime) -> datetime:
    return t.replace(microsecond=0)


def _status(draw: _Draw, cat: str, severity: int, times: dict) -> tuple[str, str | None]:
    """Settle the state at the end of the period: recent matters open, older ones closed."""
    level = _resolution_level(draw, cat, severity)
    if draw.u[8] < ESCALATED_SHARE.get(cat, 0.0) and times["accepted_at"] <= PERIOD_END:
        times["resolved_at"] = times["closed_at"] = None
        return "escalated", None
    if times["accepted_at"] > PERIOD_END:
        times["accepted_at"] = times["resolved_at"] = times["closed_at"] = None
        return "reported", None
    if times["resolved_at"] > PERIOD_END:
        times["resolved_at"] = times["closed_at"] = None
        recent = PERIOD_END - times["accepted_at"] < timedelta(hours=2)
        return ("accepted" if recent else "handling"), None
    if times["closed_at"] > PERIOD_END:
        times["closed_at"] = None
        visited = PERIOD_END - times["resolved_at"] > timedelta(days=2)
        return ("followed_up" if visited else "resolved"), level
    return "closed", level


def _resolution_level(draw: _Draw, cat: str, severity: int) -> str:
    """Choose where a matter was settled: 组, 村, 镇 or 区."""
    levels = ("group", "village", "township", "district")
    i = levels.index(draw.choose(9, dict(zip(levels, RESOLUTION_LEVELS[cat]))))
    if severity >= 3 and i < 3 and draw.u[10] < 0.5:
        i += 1  # serious matters go one level up
    return levels[i]


def _settle_disputes(records: list[dict], rng: np.random.Generator) -> None:
    """Escalate just enough old disputes that 3 % stay unresolved (the article: > 96 % resolved)."""
    disputes = [r for r in records if r["category"] == "dispute"]
    open_now = [r for r in disputes if r["status"] not in ("resolved", "followed_up", "closed")]
    missing = round(DISPUTE_UNRESOLVED * len(disputes)) - len(open_now)
    done = [r for r in disputes if r["status"] == "closed"]
    for i in sorted(rng.choice(len(done), size=max(0, missing), replace=False).tolist()):
        r = done[i]
        r.update(status="escalated", resolved_at=None, closed_at=None, resolution_level=None)
        r["attrs"]["escalated_to"] = "district"


def _reporter(world: World, rng: np.random.Generator, grid: Area, source: str) -> tuple[str, str]:
    """Name the reporter: the grid worker for their own reports, else an invented caller."""
    if source == "网格员上报":
        worker = world.staff_by_grid[grid.code]["worker"]
        return worker["name"], worker["phone"]
    name = world.person_name(rng, "M" if rng.random() < 0.55 else "F")
    return name, f"19900{int(rng.integers(10000, 1000000)):06d}"


FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def _address_text(rng: np.random.Generator, place: dict | None, canonical: str) -> str:
    """Write the address as a caller or grid worker would: mostly clean, sometimes informal."""
    text = canonical
    if place and place["kind"] == "building" and rng.random() < 0.5:
        text += f"{int(rng.integers(1, 5))}单元{int(rng.integers(1, 19))}0{int(rng.integers(1, 5))}室"
    r = rng.random()
    if r < 0.06:
        text = text.removeprefix(DISTRICT_NAME)
    elif r < 0.10:
        text = "河南省漯河市" + text
    elif r < 0.14:
        text = text.translate(FULLWIDTH)
    elif r < 0.18 and place and place["kind"] == "building":
        n = place["attrs"]["number"]
        text = text.replace(f"{n}号楼", f"{zh_number(n)}号楼" if rng.random() < 0.5 else f"{n}栋", 1)
    elif r < 0.22 and place and place["kind"] == "group":
        text = text.replace("组", "村民小组") if rng.random() < 0.5 else text.replace("组", "队")
    return text

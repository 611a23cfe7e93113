"""Generate the 三零 creation subjects: villages, enterprises and institutions, compliance exact."""
from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import Point

from .areas import TOWNSHIP_SEATS
from .coordinates import metric_xy, to_wgs84
from .gazetteer import address_prefix
from .names import township_short
from .reference import DISTRICT_CODE, is_street
from .world import Area, World, apportion

SUBJECT_VILLAGES = 183  # the article counts 183 村(社区); the 2022 list has 198
COMPLIANT_VILLAGES = 166  # 166 / 183 = 90.71 %
ENTERPRISES = 7022
COMPLIANT_ENTERPRISES = 6861  # 6861 / 7022 = 97.7 %

DEPARTMENTS = [
    ("JYJ", "郾城区教育局"), ("WJW", "郾城区卫生健康委员会"), ("MZJ", "郾城区民政局"),
    ("YJJ", "郾城区应急管理局"), ("SCJGJ", "郾城区市场监督管理局"), ("ZJJ", "郾城区住房和城乡建设局"),
    ("JTYSJ", "郾城区交通运输局"), ("NYNCJ", "郾城区农业农村局"), ("SWJ", "郾城区商务局"),
    ("WGLJ", "郾城区文化广电和旅游局"), ("GAFJ", "漯河市公安局郾城分局"),
    ("RSJ", "郾城区人力资源和社会保障局"), ("GXJ", "郾城区工业和信息化局"),
    ("STHJ", "漯河市生态环境局郾城分局"), ("SLJ", "郾城区水利局"), ("CGJ", "郾城区城市管理局"),
    ("ZRZY", "漯河市自然资源和规划局郾城分局"), ("SFJ", "郾城区司法局"),
    ("XFJY", "郾城区消防救援大队"), ("SWU", "国家税务总局漯河市郾城区税务局"),
]
# (department, name pattern, weight in urban grids, weight in rural grids)
ENTERPRISE_TYPES = [
    ("SCJGJ", "{t}超市", 10, 6), ("SCJGJ", "{t}餐饮店", 10, 3), ("SCJGJ", "{t}商贸有限公司", 8, 3),
    ("SCJGJ", "{t}便利店", 6, 4), ("YJJ", "{t}加油站", 1, 2), ("YJJ", "漯河市{t}化工有限公司", 0.5, 1),
    ("YJJ", "{t}烟花爆竹经营部", 0.3, 1), ("ZJJ", "{t}建筑工程有限公司", 3, 1.5),
    ("ZJJ", "{t}物业服务有限公司", 4, 0), ("JTYSJ", "{t}物流有限公司", 2, 2),
    ("JTYSJ", "{t}汽车维修中心", 2, 1.5), ("NYNCJ", "{v}{t}种植专业合作社", 0, 5),
    ("NYNCJ", "{t}养殖场", 0, 3), ("NYNCJ", "{v}{t}农机专业合作社", 0, 1), ("SWJ", "{t}酒店", 2, 0.5),
    ("SWJ", "{t}再生资源回收站", 1, 1), ("WGLJ", "{t}网吧", 1.5, 0.3), ("WGLJ", "{t}歌舞厅", 0.8, 0.1),
    ("GAFJ", "{t}宾馆", 2, 0.5), ("GAFJ", "{t}开锁服务部", 0.5, 0.1),
    ("RSJ", "{t}人力资源服务有限公司", 1, 0.2), ("RSJ", "{t}职业培训学校", 0.5, 0.1),
    ("GXJ", "漯河市{t}食品有限公司", 1.5, 2), ("GXJ", "{t}机械制造有限公司", 1, 1.5),
    ("GXJ", "{t}电子科技有限公司", 1, 0.3), ("STHJ", "{t}环保科技有限公司", 0.5, 0.5),
    ("STHJ", "{t}污水处理有限公司", 0.2, 0.3), ("SLJ", "{t}供水有限公司", 0.2, 0.5),
    ("CGJ", "{t}停车场", 1.5, 0), ("CGJ", "{t}广告有限公司", 1, 0), ("ZRZY", "{t}砂石料场", 0, 0.5),
    ("ZRZY", "{t}建材有限公司", 0.5, 1), ("SFJ", "{t}律师事务所", 0.8, 0), ("XFJY", "{t}商场", 1.5, 0.3),
    ("XFJY", "{t}家具城", 0.8, 0.3), ("SWU", "{t}财务咨询有限公司", 1, 0.1),
]
# Institutions, one per village (rural or urban) or per township: (department, pattern, scope, share)
INSTITUTION_TYPES = [
    ("WJW", "{v}卫生室", "rural", 1.0), ("WJW", "{v}卫生服务站", "urban", 1.0),
    ("JYJ", "{b}小学", "rural", 0.7), ("JYJ", "{b}幼儿园", "urban", 0.6),
    ("MZJ", "{v}日间照料中心", "urban", 0.5), ("JYJ", "{T}中心小学", "township", 1.0),
    ("JYJ", "{T}第一初级中学", "township", 1.0), ("SFJ", "{T}司法所", "township", 1.0),
    ("NYNCJ", "{T}农业服务中心", "township", 1.0), ("MZJ", "{T}敬老院", "town", 1.0),
    ("SLJ", "{T}水利站", "town", 1.0),
]


def build(world: World) -> None:
    """Create the 183 village subjects and 7,022 enterprises/institutions, compliance exact."""
    rng = world.rng("entities")
    world.departments = [{"code": f"{DISTRICT_CODE}-{c}", "name": n} for c, n in DEPARTMENTS]
    _add_village_subjects(world, rng)
    firms = _institutions(world, rng)
    _add_enterprises(world, rng, ENTERPRISES - len(firms), firms)
    bad = set(rng.choice(len(firms), ENTERPRISES - COMPLIANT_ENTERPRISES, replace=False).tolist())
    for i, e in enumerate(firms):
        e["compliant"] = i not in bad
    world.entities.extend(firms)
    xy = np.array([e["geom"] for e in world.entities])  # metric (x, y) until now
    for e, geom in zip(world.entities, to_wgs84(shapely.points(xy))):
        e["geom"] = geom


def _add_village_subjects(world: World, rng: np.random.Generator) -> None:
    """Take 183 of the 198 as subjects, leaving out the 15 with the fewest households."""
    villages = sorted(world.level(3), key=lambda v: (v.households, v.code))
    subjects = sorted(villages[len(villages) - SUBJECT_VILLAGES:], key=lambda v: v.code)
    bad = set(rng.choice(len(subjects), SUBJECT_VILLAGES - COMPLIANT_VILLAGES, replace=False).tolist())
    for i, v in enumerate(subjects):
        v.attrs["sanling_subject"] = True
        world.entities.append({
            "name": v.name, "kind": "village", "area_code": v.code, "department_code": None,
            "geom": v.seed, "address": f"{address_prefix(world, v)}{v.name}",
            "compliant": i not in bad, "attrs": {"official_name": v.official}})


def _institutions(world: World, rng: np.random.Generator) -> list[dict]:
    """Create the institutions: one of each kind per village or township (some kinds not everywhere)."""
    out = []
    for dept, pattern, scope, share in INSTITUTION_TYPES:
        if scope in ("township", "town"):
            hosts = [t for t in world.level(2) if scope == "township" or not is_street(t.code)]
        else:
            hosts = [v for v in world.level(3) if v.urban == (scope == "urban")]
        for host in hosts:
            if rng.random() >= share:
                continue
            name = pattern.format(v=host.name, b=host.name.removesuffix("村"), T=host.name)
            if world.unique(name, []) is None:
                continue
            grid = _host_grid(world, host)
            out.append(_entity(world, rng, name, "institution", dept, grid))
    return out


def _host_grid(world: World, host: Area) -> Area:
    """Find the grid at a township's seat or a village's centre."""
    x, y = metric_xy(*TOWNSHIP_SEATS[host.code]) if host.level == 2 else host.seed
    grid = world.grid_at([x], [y])[0]
    return grid or world.areas[sorted(c for c in world.areas if c.startswith(host.code) and len(c) == 15)[0]]


def _add_enterprises(world: World, rng: np.random.Generator, n: int, out: list[dict]) -> None:
    """Spread enterprises over grids by households, two and a half times denser in town."""
    grids = sorted(world.grids, key=lambda g: g.code)
    weights = [g.households * (2.5 if g.urban else 1.0) for g in grids]
    first, second = world.names["trade_first"], world.names["trade_second"]
    for g, count in zip(grids, apportion(n, weights, 0)):
        types = [t for t in ENTERPRISE_TYPES if (t[2] if g.urban else t[3]) > 0]
        w = np.array([t[2] if g.urban else t[3] for t in types], float)
        v = world.village_of(g.code)
        prefixes = [township_short(world.township_of(g.code).name), v.name]
        for _ in range(count):
            dept, pattern = types[int(rng.choice(len(types), p=w / w.sum()))][:2]
            name = None
            while name is None:
                trade = first[int(rng.integers(len(first)))] + second[int(rng.integers(len(second)))]
                name = world.unique(pattern.format(t=trade, v=v.name), prefixes)
            out.append(_entity(world, rng, name, "enterprise", dept, g))


def _entity(world, rng, name: str, kind: str, dept: str, grid: Area) -> dict:
    """Create one enterprise or institution at a gazetteer place of its grid."""
    place, (x, y) = _spot_in_grid(world, rng, grid)
    address = place["address"] if place else address_prefix(world, grid) + world.village_of(grid.code).name
    return {"name": name, "kind": kind, "area_code": grid.code,
            "department_code": f"{DISTRICT_CODE}-{dept}", "geom": (x, y), "address": address,
            "compliant": True, "attrs": {"place_key": place["key"] if place else None}}


def _spot_in_grid(world: World, rng: np.random.Generator, grid: Area,
                  kinds: tuple[str, ...] = ("door", "building", "group")):
    """Pick a gazetteer place in the grid and a point a few metres from it, still inside."""
    places = world.by_grid.get(grid.code, {})
    pool = [p for k in kinds for p in places.get(k, [])]
    if not pool:
        p = grid.geom_m.point_on_surface()
        return None, (p.x, p.y)
    place = pool[int(rng.integers(len(pool)))]
    x0, y0 = world.place_xy[place["key"]]
    spread = 120.0 if place["kind"] == "group" else 6.0
    x, y = x0 + rng.normal(0, spread), y0 + rng.normal(0, spread)
    if not grid.geom_m.contains(Point(x, y)):
        x, y = x0, y0
    return place, (x, y)

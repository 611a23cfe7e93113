"""The feature collections the OGC API – Features service offers, each a SQL source read with the
caller's audience: areas per level (the areas a scope may read), four-colour risk per grid, patrol
coverage per grid, incidents (through `incidents_for`, so scope and the generalisation of sensitive
incidents are those of /api/incidents) and the 三零 subjects (entities) of the areas in scope.

A source is the text of a derived table with a feature id `fid`, the stored geometry `geom`, one
column per property, and for collections with time, `t_start` and `t_end` (timestamptz) that the
`datetime` parameter is matched against. Everything from outside is a bound parameter.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import areas
from geo.policy import Audience
from geo.vocabulary import CATEGORIES, INCIDENT_STATUSES, RISK_COLOURS

from .. import coverage, risk_policy
from ..selection import TZ

ANY_ROLE = ("admin", "dispatcher", "planner", "analyst", "grid_worker")
SQL_TYPES = {"string": "text", "integer": "bigint", "number": "double precision",
             "boolean": "boolean", "date-time": "timestamptz", "date": "date"}


@dataclass(frozen=True)
class Property:
    """One feature property: its name, JSON type, title, and whether filters may use it."""

    name: str
    type: str
    title: str
    queryable: bool = True
    enum: tuple = ()

    @property
    def sql_type(self) -> str:
        return SQL_TYPES[self.type]


@dataclass(frozen=True)
class Collection:
    """One collection: metadata, who may read it, its properties and how to select its rows."""

    id: str
    title: str
    description: str
    roles: tuple[str, ...]
    properties: tuple[Property, ...]
    source: Callable[[Session, Audience, dict, dict], str]
    order: str
    id_type: str = "string"
    geometry: str = "polygon"
    temporal: bool = False
    options: tuple[str, ...] = ()   # collection-specific query parameters

    def prop(self, name: str) -> Property | None:
        return next((p for p in self.properties if p.name == name), None)

    @property
    def queryables(self) -> tuple[Property, ...]:
        return tuple(p for p in self.properties if p.queryable)

    def readable_by(self, role: str) -> bool:
        return role == "admin" or role in self.roles


def _p(name: str, kind: str, title: str, **kw) -> Property:
    return Property(name, kind, title, **kw)


# -- areas --------------------------------------------------------------------------------------
AREA_PROPERTIES = (
    _p("code", "string", "区划代码 code"), _p("name", "string", "名称 name"),
    _p("level", "integer", "层级 level (1 district … 4 grid)"), _p("kind", "string", "类型 kind"),
    _p("parent_code", "string", "上级代码 parent code"), _p("parent_name", "string", "上级名称 parent name"),
    _p("group_name", "string", "片区 group"), _p("households", "integer", "户数 households"),
    _p("population", "integer", "人口 population"), _p("urban", "boolean", "城镇 urban"),
    _p("version", "integer", "版本 version"), _p("staff", "integer", "一长两员人数 staff"),
)


def _areas_of_level(level: int):
    def source(session: Session, audience: Audience, params: dict, options: dict) -> str:
        params["area_level"] = level
        visible = areas.visible_sql(audience.scope, params)
        return f"""
            SELECT a.code AS fid, a.geom, a.code, a.name, a.level, a.kind, p.code AS parent_code,
                   p.name AS parent_name, g.name AS group_name, a.households, a.population,
                   a.urban, a.version,
                   (SELECT count(*) FROM area_staff st WHERE st.area_id = a.id) AS staff
              FROM areas a
              LEFT JOIN areas p ON p.id = a.parent_id
              LEFT JOIN area_groups g ON g.id = a.group_id
             WHERE a.level = :area_level AND {visible}"""
    return source


# -- four-colour risk ---------------------------------------------------------------------------
RISK_PROPERTIES = (
    _p("code", "string", "网格代码 grid code"), _p("name", "string", "网格名称 grid name"),
    _p("village_code", "string", "村/社区代码 village code"),
    _p("village_name", "string", "村/社区名称 village name"),
    _p("level", "string", "四色等级 level", enum=RISK_COLOURS),
    _p("level_zh", "string", "等级 level (中文)"),
    _p("computed_level", "string", "计算等级 computed level", enum=RISK_COLOURS),
    _p("score", "number", "得分 score"),
    _p("override_level", "string", "人工调整等级 override level", enum=RISK_COLOURS),
    _p("override_reason", "string", "调整原因 override reason", queryable=False),
    _p("override_by", "string", "调整人 override by"),
    _p("override_until", "date-time", "调整有效至 override until"),
    _p("period_start", "date", "周期开始 period start"), _p("period_end", "date", "周期结束 period end"),
    _p("stored", "boolean", "已评估入库 stored"), _p("reasons", "string", "原因 reasons", queryable=False),
)


def _risk(session: Session, audience: Audience, params: dict, options: dict) -> str:
    # The level in force is the newest stored period on or before today with an override while it
    # lasts (as /api/risk); a grid never assessed gets its computed level, passed in as arrays.
    now = datetime.now(TZ)
    inside, scope_params = audience.scope.sql("g.path")
    params.update(scope_params, risk_day=now.astimezone(TZ).date(), risk_now=now,
                  risk_zh=json.dumps(risk_policy.LEVEL_ZH, ensure_ascii=False), risk_tz=str(TZ))
    missing = session.execute(text(f"""
        SELECT g.id FROM areas g
         WHERE g.level = 4 AND {inside}
           AND NOT EXISTS (SELECT 1 FROM risk_levels x WHERE x.area_id = g.id AND x.period_start <= :risk_day)
        """), params).scalars().all()
    fresh: dict[int, tuple[str, float, str]] = {}
    policy = risk_policy.load_policy()
    if missing:
        assessed = risk_policy.assess(session, policy, now, list(missing))
        fresh = {gid: (a.level(policy), round(a.score, 2), "；".join(r["zh"] for r in a.reasons(policy)))
                 for gid, a in assessed.items()}
    # A computed level stands for the current period, so `datetime` finds it there.
    period = risk_policy.period_of(now, policy)
    params.update(risk_period_start=period[0], risk_period_end=period[1])
    params.update(risk_ids=list(fresh), risk_levels=[v[0] for v in fresh.values()],
                  risk_scores=[v[1] for v in fresh.values()], risk_reasons=[v[2] for v in fresh.values()])
    return f"""
        SELECT g.code AS fid, g.geom, g.code, g.name, v.code AS village_code, v.name AS village_name,
               s.level, CAST(:risk_zh AS jsonb) ->> s.level AS level_zh,
               COALESCE(r.level, f.level) AS computed_level, COALESCE(r.score, f.score) AS score,
               s.override_level, s.override_reason, u.username AS override_by, s.override_until,
               COALESCE(r.period_start, CAST(:risk_period_start AS date)) AS period_start,
               COALESCE(r.period_end, CAST(:risk_period_end AS date)) AS period_end,
               r.level IS NOT NULL AS stored,
               COALESCE((SELECT string_agg(x ->> 'zh', '；') FROM jsonb_array_elements(r.reasons) x),
                        f.reasons) AS reasons,
               (COALESCE(r.period_start, CAST(:risk_period_start AS date))::timestamp
                   AT TIME ZONE :risk_tz) AS t_start,
               ((COALESCE(r.period_end, CAST(:risk_period_end AS date)) + 1)::timestamp
                   AT TIME ZONE :risk_tz) - interval '1 microsecond' AS t_end
          FROM areas g
          LEFT JOIN areas v ON v.id = g.parent_id
          LEFT JOIN LATERAL (SELECT * FROM risk_levels x WHERE x.area_id = g.id
                                AND x.period_start <= :risk_day
                              ORDER BY x.period_start DESC LIMIT 1) r ON true
          LEFT JOIN users u ON u.id = r.override_by
          LEFT JOIN unnest(CAST(:risk_ids AS int[]), CAST(:risk_levels AS text[]),
                           CAST(:risk_scores AS float8[]), CAST(:risk_reasons AS text[]))
                    AS f(id, level, score, reasons) ON f.id = g.id
          CROSS JOIN LATERAL (SELECT
                 CASE WHEN r.override_level IS NOT NULL AND r.override_until > :risk_now
                      THEN r.override_level ELSE COALESCE(r.level, f.level) END AS level,
                 CASE WHEN r.override_until > :risk_now THEN r.override_level END AS override_level,
                 CASE WHEN r.override_until > :risk_now THEN r.override_reason END AS override_reason,
                 CASE WHEN r.override_until > :risk_now THEN r.override_until END AS override_until) s
         WHERE g.level = 4 AND {inside}"""


# -- patrol coverage ----------------------------------------------------------------------------
COVERAGE_PROPERTIES = (
    _p("code", "string", "网格代码 grid code"), _p("name", "string", "网格名称 grid name"),
    _p("risk", "string", "四色等级 risk level", enum=RISK_COLOURS + ("unknown",)),
    _p("score", "number", "风险得分 risk score"), _p("minutes", "number", "巡逻分钟 patrol minutes"),
    _p("visits", "integer", "巡逻次数 visits"), _p("units", "integer", "巡逻单元数 units"),
    _p("last_patrol", "date-time", "最近巡逻 last patrol"),
    _p("window_hours", "number", "统计时长 window hours"),
)


def _coverage(session: Session, audience: Audience, params: dict, options: dict) -> str:
    # Minutes and visits come from the patrol tracks (layers/coverage.py), computed once per
    # request and joined to the grids as arrays, so filters, bbox and paging stay in SQL.
    hours = coverage.parse_hours(options.get("hours"))
    rows = coverage.coverage(session, audience.scope, hours)
    params.update(cov_ids=[r["id"] for r in rows], cov_risk=[r["risk"] for r in rows],
                  cov_score=[r["score"] for r in rows], cov_minutes=[r["minutes"] for r in rows],
                  cov_visits=[r["visits"] for r in rows], cov_units=[r["units"] for r in rows],
                  cov_last=[r["last_patrol"] for r in rows], cov_hours=hours)
    return """
        SELECT a.code AS fid, a.geom, a.code, a.name, c.risk, c.score, c.minutes, c.visits, c.units,
               c.last_patrol, CAST(:cov_hours AS float8) AS window_hours,
               c.last_patrol AS t_start, c.last_patrol AS t_end
          FROM unnest(CAST(:cov_ids AS int[]), CAST(:cov_risk AS text[]), CAST(:cov_score AS float8[]),
                      CAST(:cov_minutes AS float8[]), CAST(:cov_visits AS int[]),
                      CAST(:cov_units AS int[]), CAST(:cov_last AS timestamptz[]))
               AS c(id, risk, score, minutes, visits, units, last_patrol)
          JOIN areas a ON a.id = c.id"""


# -- incidents ----------------------------------------------------------------------------------
INCIDENT_PROPERTIES = (
    _p("id", "integer", "编号 id"), _p("external_id", "string", "外部编号 external id"),
    _p("category", "string", "类别 category", enum=CATEGORIES), _p("subtype", "string", "子类 subtype"),
    _p("severity", "integer", "等级 severity (1–4)"),
    _p("status", "string", "状态 status", enum=INCIDENT_STATUSES),
    _p("occurred_at", "date-time", "发生时间 occurred at"), _p("reported_at", "date-time", "上报时间 reported at"),
    _p("grid_code", "string", "网格代码 grid code"), _p("area_code", "string", "区划代码 area code"),
    _p("area_name", "string", "区划名称 area name"), _p("geocode_level", "string", "定位精度 geocode level"),
    _p("geocode_confidence", "number", "定位置信度 geocode confidence"),
    _p("outside_jurisdiction", "boolean", "辖区外 outside jurisdiction"),
    _p("resolution_level", "string", "化解层级 resolution level"), _p("source", "string", "来源 source"),
    _p("sensitive", "boolean", "敏感 sensitive"), _p("generalised", "boolean", "位置已概化 generalised"),
    # Free text and people are shown (to those who may see them) but never filtered on.
    _p("description", "string", "描述 description", queryable=False),
    _p("address", "string", "地址 address", queryable=False),
    _p("reporter_name", "string", "反映人 reporter", queryable=False),
    _p("reporter_phone", "string", "联系电话 phone", queryable=False),
)


def _incidents(session: Session, audience: Audience, params: dict, options: dict) -> str:
    # incidents_for applies the scope and shows a sensitive incident at its grid's label point to
    # the generalising audiences; bbox and S_INTERSECTS therefore test the point shown.
    return f"""
        SELECT i.id AS fid, i.geom, i.id, i.external_id, i.category, i.subtype, i.severity,
               i.status, i.occurred_at, i.reported_at, g.code AS grid_code, a.code AS area_code,
               a.name AS area_name, i.geocode_level, i.geocode_confidence, i.outside_jurisdiction,
               i.resolution_level, i.source, i.sensitive, i.generalised, i.description, i.address,
               i.reporter_name, i.reporter_phone, i.occurred_at AS t_start, i.occurred_at AS t_end
          FROM {audience.incidents(params)}
          LEFT JOIN areas a ON a.id = COALESCE(i.area_id, i.grid_id)
          LEFT JOIN areas g ON g.id = i.grid_id"""


# -- 三零 subjects --------------------------------------------------------------------------------
ENTITY_PROPERTIES = (
    _p("id", "integer", "编号 id"), _p("name", "string", "名称 name"),
    _p("kind", "string", "类型 kind", enum=("village", "enterprise", "institution")),
    _p("area_code", "string", "区划代码 area code"), _p("area_name", "string", "区划名称 area name"),
    _p("department_code", "string", "主管部门代码 department code"),
    _p("department_name", "string", "主管部门 department"),
    _p("address", "string", "地址 address", queryable=False), _p("compliant", "boolean", "创建达标 compliant"),
)


def _entities(session: Session, audience: Audience, params: dict, options: dict) -> str:
    # A subject is in scope when its area is; one without an area only for an unscoped reader.
    inside, scope_params = audience.scope.sql("a.path")
    params.update(scope_params)
    return f"""
        SELECT e.id AS fid, e.geom, e.id, e.name, e.kind, a.code AS area_code, a.name AS area_name,
               d.code AS department_code, d.name AS department_name, e.address, e.compliant
          FROM entities e
          LEFT JOIN areas a ON a.id = e.area_id
          LEFT JOIN departments d ON d.id = e.department_id
         WHERE {inside}"""


AREA_LEVELS = {"districts": (1, "区 Districts"), "townships": (2, "镇/街道 Townships and sub-districts"),
               "villages": (3, "村/社区 Villages and communities"), "grids": (4, "网格 Grids")}
COVERAGE_ROLES = ("dispatcher", "analyst")

COLLECTIONS: dict[str, Collection] = {c.id: c for c in (
    *(Collection(cid, title, f"Level {level} governance areas the reader's scope may read "
                 "(its subtrees and the areas above them).", ANY_ROLE, AREA_PROPERTIES,
                 _areas_of_level(level), "s.fid")
      for cid, (level, title) in AREA_LEVELS.items()),
    Collection("risk", "四色预警 Four-colour risk",
               "Every grid in scope with its level in force (blue, yellow, orange, red), score and "
               "reasons; the time is the assessment period.", ANY_ROLE, RISK_PROPERTIES, _risk,
               "s.fid", temporal=True),
    Collection("coverage", "巡逻覆盖 Patrol coverage",
               "Every grid in scope with its patrol minutes, visits and units over the last `hours` "
               "(24 by default, 7d for a week) against its risk colour; the time is the last patrol.",
               COVERAGE_ROLES, COVERAGE_PROPERTIES, _coverage, "s.fid", temporal=True,
               options=("hours",)),
    Collection("incidents", "事件 Incidents",
               "Incidents in scope, newest first; a sensitive incident is shown at its grid's centre, "
               "without address, description or reporter, to the roles that do not act on it. "
               "The time is when it occurred.", ANY_ROLE, INCIDENT_PROPERTIES, _incidents,
               "s.occurred_at DESC, s.fid DESC", id_type="integer", geometry="point", temporal=True),
    Collection("entities", "三零创建主体 Zero-campaign subjects",
               "Villages, communities, enterprises and institutions of the 三零 campaign in the areas "
               "in scope, with their responsible department and compliance.", ANY_ROLE,
               ENTITY_PROPERTIES, _entities, "s.fid", id_type="integer", geometry="any"),
)}

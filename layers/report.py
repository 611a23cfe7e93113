"""The monthly review report (周交办、月讲评): one standalone HTML file, and a PDF printed from it.

What was assigned and resolved week by week, where matters were resolved (小事不出村、大事不出乡),
what is overdue, which grids turned orange or red, the 三零 scorecard at month end, the review map
and the grids that changed most. Every script, stylesheet and image is inside the HTML, so the file
opens from a USB stick on an offline intranet; the PDF is printed by headless Chromium.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
from sqlalchemy import text
from sqlalchemy.orm import Session

from geo.errors import InvalidInput, SetupError
from geo.policy import Audience
from geo.vocabulary import CATEGORIES, RESOLVED_STATUSES

from . import heat, review, risk, scorecards, selection
from .metric import Plane
from .selection import SYSTEM, TZ

TEMPLATES = Path(__file__).with_name("templates")
OVERDUE_DAYS = 30
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")

LABELS = {
    "zh": {"title": "平安建设“三零”创建月讲评", "subtitle": "周交办、月讲评", "generated": "生成时间",
           "overview": "一、本月概况", "weekly": "二、周交办", "monthly": "三、月讲评",
           "risk": "四、四色预警", "sanling": "五、“三零”创建", "map": "六、研判地图",
           "grids": "七、网格环比", "method": "方法说明", "category": "类别", "this": "本月",
           "last": "上月", "change": "变化", "total": "合计", "week": "周", "assigned": "新交办",
           "resolved": "本周办结", "assigned_resolved": "其中已办结", "rate": "办结率",
           "open_end": "周末未办结", "level": "矛盾纠纷化解层级",
           "count": "件数", "share": "占比", "within_village": "小事不出村", "within_township": "大事不出乡",
           "not_passed_up": "矛盾不上交", "overdue": f"超过{OVERDUE_DAYS}天未办结", "grid": "网格",
           "days_open": "已用天数", "severity": "等级", "turned": "本月转为橙色/红色的网格",
           "from": "原等级", "to": "新等级", "reason": "原因", "none": "无", "at_end": "月末等级分布",
           "days_since": "距上次（天）", "zero_months": "连续为零（月）", "last_30": "近30天",
           "disputes": "矛盾纠纷化解率", "villages": "村（社区）创建达标率",
           "enterprises": "企事业单位创建达标率", "departments": "达标率最低的行业主管部门",
           "increase": "增加最多", "decrease": "减少最多", "blue": "蓝色", "yellow": "黄色",
           "orange": "橙色", "red": "红色", "rank": "在上级中的排名", "dept": "部门",
           "petition": "信访", "accident": "事故", "criminal": "案件", "dispute": "矛盾纠纷",
           "hazard": "隐患", "group": "组", "village": "村", "township": "镇", "district": "区",
           "method_text": "热力图为公制平面（EPSG:{epsg}）上的高斯核密度，带宽 {bandwidth} 米；热点为 Getis-Ord Gi*"
                          "（含自身，二值距离带），置换检验并经 Benjamini–Hochberg 错误发现率校正，按 90/95/99% 分级；"
                          "新兴热点按六边形×月的时空分箱计算 Gi*，以 Mann-Kendall 检验趋势，类别沿用 Esri 定义；"
                          "四色等级按《风险政策》计分、保底与升降级规则（升级即时、降级需平稳周期与回访）。",
           "visits": "走访与村务", "recorded": "系统记录（近12个月）", "reported": "通报数字",
           "households_visited": "走访户数", "households_month": "本月走访户数",
           "person_visits": "走访人次", "follow_ups": "已化解矛盾纠纷的回访",
           "every_matter": "事事回访", "meetings": "“510”圆桌议事会（次）",
           "problems_solved": "议事会解决问题（个）", "meeting_disputes": "议事会化解矛盾（个）",
           "logbook_red": "红色记录簿（好人好事）", "logbook_black": "黑色记录簿（曝光）",
           "logbook_blue": "蓝色记录簿（村庄记忆）", "settled": "其中化解纠纷",
           "visits_note": "回访以登记的回访走访为准，办结本身不计为回访；通报数字为全区两年累计。"},
    "en": {"title": "Monthly review: the “three zeros” campaign", "subtitle": "weekly assignment, monthly review",
           "generated": "Generated", "overview": "1. The month at a glance", "weekly": "2. Week by week",
           "monthly": "3. Monthly review", "risk": "4. Four-colour warning", "sanling": "5. Three zeros",
           "map": "6. Review map", "grids": "7. Grids that changed most", "method": "Method",
           "category": "Category", "this": "This month", "last": "Last month", "change": "Change",
           "total": "Total", "week": "Week", "assigned": "Assigned", "resolved": "Resolved in the week",
           "assigned_resolved": "of which resolved", "rate": "Resolved share",
           "open_end": "Open at week end", "level": "Disputes resolved at",
           "count": "Count", "share": "Share", "within_village": "Within the village",
           "within_township": "Within the township", "not_passed_up": "Not passed up",
           "overdue": f"Open for more than {OVERDUE_DAYS} days", "grid": "Grid", "days_open": "Days open",
           "severity": "Severity", "turned": "Grids that turned orange or red this month",
           "from": "From", "to": "To", "reason": "Why", "none": "none", "at_end": "Levels at month end",
           "days_since": "Days since last", "zero_months": "Zero months", "last_30": "Last 30 days",
           "disputes": "Dispute resolution rate", "villages": "Villages meeting the standard",
           "enterprises": "Enterprises meeting the standard",
           "departments": "Departments with the lowest compliance", "increase": "Largest increases",
           "decrease": "Largest decreases", "blue": "Blue", "yellow": "Yellow", "orange": "Orange",
           "red": "Red", "rank": "Rank within the parent", "dept": "Department",
           "petition": "Petition", "accident": "Accident", "criminal": "Criminal case",
           "dispute": "Dispute", "hazard": "Hazard", "group": "Group", "village": "Village",
           "township": "Township", "district": "District",
           "method_text": "Heat: Gaussian kernel density on a metric plane (EPSG:{epsg}), bandwidth {bandwidth} m. "
                          "Hot spots: Getis-Ord Gi* (self included, binary distance band), permutation "
                          "inference with the Benjamini–Hochberg false discovery rate, binned at 90/95/99 %. "
                          "Emerging hot spots: Gi* on hexagon × month bins, Mann-Kendall trend, Esri's "
                          "pattern definitions. Four colours: the risk policy's score, floors and "
                          "hysteresis (up at once, down after quiet periods and a follow-up visit).",
           "visits": "Visits and village records", "recorded": "Recorded (last 12 months)",
           "reported": "Reported figure", "households_visited": "Households visited",
           "households_month": "Households visited this month", "person_visits": "Person-visits (人次)",
           "follow_ups": "Follow-up visits of resolved disputes", "every_matter": "every matter",
           "meetings": "“510” round-table meetings", "problems_solved": "Problems solved at meetings",
           "meeting_disputes": "Disputes settled at meetings", "logbook_red": "Red book (good deeds)",
           "logbook_black": "Black book (misconduct)", "logbook_blue": "Blue book (village memory)",
           "settled": "disputes settled", "visits_note": "A follow-up counts only as a logged "
           "follow-up visit, never as a closing; the reported figures are the district's over two "
           "years."},
}


def recent_months(session: Session, audience: Audience, count: int = 12,
                  now: datetime | None = None) -> list[str]:
    """The months to review, newest first ('YYYY-MM'): the `count` complete months up to the last
    one, those without incidents included, and the latest `count` months with incidents the
    audience may read (older data stays reachable; the month under way is not offered)."""
    start, _ = selection.last_complete_month(now)
    months = set()
    for _ in range(count):
        months.add(start.strftime("%Y-%m"))
        start = selection.previous_month(start)[0]
    params: dict = {"n": count, "upto": selection.last_complete_month(now)[1]}
    months.update(session.execute(text(f"""
        SELECT DISTINCT to_char(i.occurred_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM') AS m
          FROM {audience.incidents(params)} WHERE i.occurred_at < :upto ORDER BY m DESC LIMIT :n"""),
        params).scalars())
    return sorted(months, reverse=True)


def weekly(session: Session, path: str, start: datetime, end: datetime,
           audience: Audience) -> list[dict]:
    """Count per week (周交办): assigned, of those resolved by month end, resolved, open at week end."""
    weeks = []
    monday = (start - timedelta(days=start.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    done_at = "COALESCE(i.resolved_at, i.closed_at)"
    while monday < end:
        w0, w1 = max(monday, start), min(monday + timedelta(days=7), end)
        params = {"w0": w0, "w1": w1, "m0": start, "m1": end, "p": path,
                  "done": list(RESOLVED_STATUSES)}
        relation = audience.incidents(params)
        row = session.execute(text(f"""
            SELECT count(*) FILTER (WHERE i.reported_at >= :w0 AND i.reported_at < :w1) AS assigned,
                   count(*) FILTER (WHERE i.reported_at >= :w0 AND i.reported_at < :w1
                                      AND i.status = ANY(:done) AND {done_at} < :m1) AS assigned_resolved,
                   count(*) FILTER (WHERE {done_at} >= :w0 AND {done_at} < :w1) AS resolved,
                   count(*) FILTER (WHERE i.reported_at < :w1 AND i.reported_at >= :m0
                                      AND (({done_at} IS NULL AND NOT (i.status = ANY(:done)))
                                           OR {done_at} >= :w1)) AS open_end
              FROM {relation} JOIN areas g ON g.id = i.grid_id
             WHERE g.path <@ CAST(:p AS ltree) AND i.reported_at < :w1
               AND (i.reported_at >= :m0 OR {done_at} >= :w0)"""), params).mappings().one()
        weeks.append({"from": w0.date().isoformat(), "to": (w1 - timedelta(seconds=1)).date().isoformat(),
                      **row, "rate": round(100.0 * row["assigned_resolved"] / row["assigned"], 1)
                      if row["assigned"] else None})
        monday += timedelta(days=7)
    return weeks


def resolution(session: Session, path: str, start: datetime, end: datetime,
               audience: Audience) -> dict:
    """月讲评: disputes resolved this month by the level they were resolved at (the 三级过滤网 and above)."""
    params = {"p": path, "s": start, "e": end, "done": list(RESOLVED_STATUSES)}
    rows: dict[str, int] = dict(session.execute(text(f"""
        SELECT i.resolution_level, count(*) FROM {audience.incidents(params)}
          JOIN areas g ON g.id = i.grid_id
         WHERE g.path <@ CAST(:p AS ltree) AND i.category = 'dispute' AND i.status = ANY(:done)
           AND COALESCE(i.resolved_at, i.closed_at) >= :s AND COALESCE(i.resolved_at, i.closed_at) < :e
         GROUP BY 1"""), params).all())
    total = sum(rows.values())
    levels: list[dict[str, Any]] = [{"level": lvl, "count": rows.get(lvl, 0),
               "share": round(100.0 * rows.get(lvl, 0) / total, 1) if total else None}
              for lvl in scorecards.RESOLUTION_ORDER]
    in_village = sum(r["count"] for r in levels[:2])
    return {"total": total, "levels": levels,
            "within_village": round(100.0 * in_village / total, 1) if total else None,
            "within_township": round(100.0 * (in_village + levels[2]["count"]) / total, 1) if total else None}


def overdue(session: Session, path: str, end: datetime, audience: Audience, limit: int = 15) -> dict:
    """Matters open at month end for more than OVERDUE_DAYS days (no names, no phone numbers)."""
    params = {"p": path, "end": end, "cut": end - timedelta(days=OVERDUE_DAYS), "done": list(RESOLVED_STATUSES)}
    relation = audience.incidents(params)
    where = """g.path <@ CAST(:p AS ltree) AND i.reported_at < :cut
               AND ((COALESCE(i.resolved_at, i.closed_at) IS NULL AND NOT (i.status = ANY(:done)))
                    OR COALESCE(i.resolved_at, i.closed_at) >= :end)"""
    total = session.execute(text(f"SELECT count(*) FROM {relation} JOIN areas g ON g.id = i.grid_id "
                                 f"WHERE {where}"), params).scalar_one()
    rows = session.execute(text(f"""
        SELECT i.id, i.category, i.severity, i.status, g.name AS grid, i.reported_at
          FROM {relation} JOIN areas g ON g.id = i.grid_id WHERE {where}
         ORDER BY i.severity DESC, i.reported_at LIMIT :n"""), {**params, "n": limit}).mappings().all()
    return {"total": total, "items": [{**r, "days": (end - r["reported_at"]).days} for r in rows]}


def turned(session: Session, path: str, start: datetime, end: datetime) -> list[dict]:
    """Grids whose stored level rose to orange or red in a period starting this month."""
    rows = session.execute(text("""
        SELECT g.code, g.name, r.period_start, r.level, r.reasons,
               (SELECT p.level FROM risk_levels p WHERE p.area_id = r.area_id AND p.period_start < r.period_start
                 ORDER BY p.period_start DESC LIMIT 1) AS previous
          FROM risk_levels r JOIN areas g ON g.id = r.area_id
         WHERE g.path <@ CAST(:p AS ltree) AND r.period_start >= :s AND r.period_start < :e
           AND r.level IN ('orange', 'red')
         ORDER BY r.period_start, g.code"""), {"p": path, "s": start.date(), "e": end.date()}).mappings().all()
    out = []
    for r in rows:
        if r["previous"] is None or risk.RANK[r["previous"]] >= risk.RANK[r["level"]]:
            continue
        why = [x for x in (r["reasons"] or []) if x.get("rule") in ("score", "floor")]
        out.append({"code": r["code"], "name": r["name"], "week": r["period_start"].isoformat(),
                    "from": r["previous"], "to": r["level"], "reasons": why})
    return out


def data(session: Session, area: str, month: str, audience: Audience) -> dict:
    """Everything the report of an area in the audience's scope shows, as plain data."""
    start, end = selection.parse_month(month)
    root = audience.scope.area(session, area)
    comparison = review.compare(session, area, start, end, audience)
    levels = risk.features(session, area, now=end - timedelta(seconds=1))["summary"]["levels"]
    return {
        "area": {"code": root["code"], "name": root["name"], "level": root["level"]},
        "month": month, "start": start, "end": end, "last_day": (end - timedelta(days=1)).date(),
        "comparison": comparison,
        "weekly": weekly(session, root["path"], start, end, audience),
        "resolution": resolution(session, root["path"], start, end, audience),
        "overdue": overdue(session, root["path"], end, audience),
        "turned": turned(session, root["path"], start, end), "levels": levels,
        "scorecard": scorecards.scorecard(session, area, audience, as_of=end - timedelta(seconds=1)),
    }


def build(session: Session, area: str, month: str, audience: Audience, *, locale: str = "zh",
          with_map: bool = True) -> str:
    """The standalone HTML report of `area` for `month` ('YYYY-MM'), as `audience` may read it."""
    d = data(session, area, month, audience)
    start, end = d["start"], d["end"]
    map_html = ""
    if with_map:
        m = review.review_map(session, area, start, end, audience, locale=locale)
        map_html = review.iframe(review.inline(review.render(m)), title="map", height="640px")
    epsg = Plane.for_bounds(*selection.area_geometry(session, area).bounds).epsg
    labels = LABELS.get(locale, LABELS["zh"])
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    document = env.get_template("report.html").render(
        d=d, L=labels, locale=locale, map_html=map_html, categories=CATEGORIES,
        method=labels["method_text"].format(epsg=epsg, bandwidth=int(heat.DEFAULT_BANDWIDTH_M)),
        generated=datetime.now(TZ).strftime("%Y-%m-%d %H:%M"), risk_hex=review.RISK_HEX)
    review.check_offline(document)
    return document


def find_chromium(preferred: str | None = None) -> str:
    """The Chromium to print with (`preferred`, else the system's), or a SetupError saying how to
    install it."""
    for name in (preferred, "/usr/bin/chromium", *CHROMIUM):
        if name and (shutil.which(name) or (os.path.isabs(name) and os.path.exists(name))):
            return shutil.which(name) or name
    raise SetupError("Chromium is needed to print the PDF: install it (`make test-deps` or "
                     "`apt-get install chromium`) or set ANWANG_CHROMIUM")


def print_pdf(html_path: Path, pdf_path: Path, *, timeout: float = 120.0,
              chromium: str | None = None) -> Path:
    """Print an HTML file to PDF with headless Chromium (no network needed: the file is standalone)."""
    chromium = find_chromium(chromium)
    with tempfile.TemporaryDirectory(prefix="anwang-pdf-") as profile:
        cmd = [chromium, "--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-extensions", f"--user-data-dir={profile}", "--no-pdf-header-footer",
               "--run-all-compositor-stages-before-draw", "--virtual-time-budget=15000",
               f"--print-to-pdf={pdf_path}", Path(html_path).resolve().as_uri()]
        if os.geteuid() == 0:
            cmd.insert(1, "--no-sandbox")  # Chromium refuses to sandbox as root (containers, CI)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not Path(pdf_path).exists() or Path(pdf_path).stat().st_size == 0:
        raise SetupError(f"Chromium could not print the PDF (exit {done.returncode}): "
                         f"{(done.stderr or '').strip()[-400:]}")
    return Path(pdf_path)


def write(session: Session, area: str, month: str, output: str | Path, *, pdf: bool = True,
          locale: str = "zh", audience: Audience = SYSTEM, chromium: str | None = None) -> list[Path]:
    """Write the HTML report (and beside it the PDF); return the files written."""
    output = Path(output)
    if output.suffix.lower() not in (".html", ".htm", ".pdf"):
        raise InvalidInput("output", f"the report file must end in .html or .pdf; got {output.name!r}")
    html_path = output.with_suffix(".html")
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(build(session, area, month, audience, locale=locale), encoding="utf-8")
    written = [html_path]
    if pdf or output.suffix.lower() == ".pdf":
        written.append(print_pdf(html_path, output.with_suffix(".pdf"), chromium=chromium))
    return written

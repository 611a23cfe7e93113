"""The domain's words, defined once: levels, roles, incident categories and statuses, the 三级过滤网
levels, the four colours, patrol units — each key with its Chinese and English name.

Code compares keys (`"dispute"`); people read names (`矛盾纠纷`, "dispute"). Pages, reports, imports
and the API all take their names from here, so a word is never spelt two ways.
"""
from __future__ import annotations

# Levels mean the same everywhere: 1 district, 2 township/sub-district, 3 village/community,
# 4 grid, 5 micro-grid (optional).
LEVELS = {1: "district", 2: "township", 3: "village", 4: "grid", 5: "microgrid"}
LEVEL_BY_NAME = {name: number for number, name in LEVELS.items()}
LEVEL_NAMES = {"district": ("区", "district"), "township": ("镇/街道", "township"),
               "village": ("村/社区", "village / community"), "grid": ("网格", "grid"),
               "microgrid": ("微网格", "micro-grid")}

# Who uses the system. An administrator may do everything; the others what their role allows,
# inside their area scope.
ROLES = ("admin", "dispatcher", "planner", "analyst", "grid_worker")
ROLE_NAMES = {"admin": ("管理员", "administrator"), "dispatcher": ("调度员", "dispatcher"),
              "planner": ("规划员", "planner"), "analyst": ("研判员", "analyst"),
              "grid_worker": ("网格员", "grid worker")}
PUBLIC = "public"  # the audience without a login

# Incidents (事件) and their categories.
CATEGORIES = ("petition", "accident", "criminal", "dispute", "hazard")
CATEGORY_NAMES = {"petition": ("信访", "petition"), "accident": ("事故", "accident"),
                  "criminal": ("案件", "criminal case"), "dispute": ("矛盾纠纷", "dispute"),
                  "hazard": ("隐患", "hazard")}
CATEGORY_ZH = {key: names[0] for key, names in CATEGORY_NAMES.items()}
# What files and forms call the categories besides their keys and Chinese names.
CATEGORY_BY_NAME = {**{c: c for c in CATEGORIES}, **{zh: c for c, zh in CATEGORY_ZH.items()},
                    "信访事项": "petition", "上访": "petition", "交通事故": "accident",
                    "刑事案件": "criminal", "治安案件": "criminal", "纠纷": "dispute",
                    "安全隐患": "hazard", "crime": "criminal"}
SEVERITIES = (1, 2, 3, 4)
SEVERITY_NAMES = {1: ("一般", "ordinary"), 2: ("较大", "serious"), 3: ("重大", "major"),
                  4: ("特别重大", "extraordinary")}
SEVERITY_BY_NAME = {"一般": 1, "较大": 2, "重大": 3, "特别重大": 4, "low": 1, "medium": 2,
                    "high": 3, "critical": 4}

# The workflow's statuses and the subsets every reader means by "open" and "resolved".
INCIDENT_STATUSES = ("reported", "accepted", "handling", "resolved", "followed_up", "closed",
                     "escalated")
STATUS_NAMES = {"reported": ("已上报", "reported"), "accepted": ("已受理", "accepted"),
                "handling": ("处置中", "handling"), "resolved": ("已化解", "resolved"),
                "followed_up": ("已回访", "followed up"), "closed": ("已办结", "closed"),
                "escalated": ("已上报上级", "escalated")}
OPEN_STATUSES = ("reported", "accepted", "handling", "escalated")
RESOLVED_STATUSES = ("resolved", "followed_up", "closed")

# 孟庙镇's 三级过滤网 and the district above it: where a matter is held and resolved.
RESOLUTION_LEVELS = ("group", "village", "township", "district")
RESOLUTION_LEVEL_ZH = {"group": "组", "village": "村", "township": "镇", "district": "区"}
RESOLUTION_LEVEL_BY_NAME = {**{lv: lv for lv in RESOLUTION_LEVELS}, "组": "group",
                            "村民组": "group", "小区": "group", "村": "village", "社区": "village",
                            "镇": "township", "乡": "township", "街道": "township", "区": "district",
                            "县": "district"}

# 一长两员: 网格长, 网格员, 监督员.
STAFF_ROLES = ("leader", "worker", "supervisor")
STAFF_ROLE_NAMES = {"leader": ("网格长", "grid leader"), "worker": ("网格员", "grid worker"),
                    "supervisor": ("监督员", "supervisor")}

# 四色预警, red highest.
RISK_COLOURS = ("blue", "yellow", "orange", "red")
RISK_COLOUR_NAMES = {"blue": ("蓝色", "blue"), "yellow": ("黄色", "yellow"),
                     "orange": ("橙色", "orange"), "red": ("红色", "red")}
RISK_COLOUR_ZH = {key: names[0] for key, names in RISK_COLOUR_NAMES.items()}

# Patrol units.
UNIT_KINDS = ("car", "foot", "volunteer")
UNIT_KIND_NAMES = {"car": ("巡逻车", "car"), "foot": ("步巡", "on foot"),
                   "volunteer": ("志愿者", "volunteer")}
UNIT_STATUSES = ("on_duty", "busy", "off_duty")
UNIT_STATUS_NAMES = {"on_duty": ("在岗", "on duty"), "busy": ("出警中", "busy"),
                     "off_duty": ("离岗", "off duty")}

# 走访: what a grid worker's visit is for. A 回访 (follow-up) is a visit about one matter, logged
# after it was resolved; it is what lets a matter close and a grid's colour come down.
VISIT_KINDS = ("home", "follow_up", "safety", "outreach")
VISIT_KIND_NAMES = {"home": ("入户走访", "home visit"), "follow_up": ("回访", "follow-up visit"),
                    "safety": ("安全检查", "safety check"), "outreach": ("政策宣传", "outreach")}
VISIT_KIND_BY_NAME = {**{k: k for k in VISIT_KINDS},
                      **{names[0]: k for k, names in VISIT_KIND_NAMES.items()},
                      "走访": "home", "入户": "home", "followup": "follow_up", "回访": "follow_up",
                      "安全": "safety", "宣传": "outreach"}

# "510" 圆桌议事会: who sits at a round-table meeting ("5": 党员代表, 居民代表, 网格员, 网格长,
# 街道干部, joined later by deputies and the departments a matter concerns).
MEETING_PARTICIPANTS = ("party_member", "resident", "grid_worker", "grid_leader", "official",
                        "deputy", "department")
MEETING_PARTICIPANT_NAMES = {"party_member": ("党员代表", "party members"),
                             "resident": ("居民代表", "residents' representatives"),
                             "grid_worker": ("网格员", "grid workers"),
                             "grid_leader": ("网格长", "grid leaders"),
                             "official": ("街道干部", "township officials"),
                             "deputy": ("人大代表、政协委员", "deputies"),
                             "department": ("职能部门", "departments")}

# 三色治理 村史记录簿: red 光荣榜 (honours, good deeds), black 曝光台 (quarrels, fights, offences),
# blue 村庄记忆 (weddings, funerals, major events).
LOGBOOK_COLOURS = ("red", "black", "blue")
LOGBOOK_COLOUR_NAMES = {"red": ("红色记录簿（光荣榜）", "red book (honours)"),
                        "black": ("黑色记录簿（曝光台）", "black book (misconduct)"),
                        "blue": ("蓝色记录簿（村庄记忆）", "blue book (village memory)")}

_NAMES: dict[str, dict] = {"level": LEVEL_NAMES, "role": ROLE_NAMES, "category": CATEGORY_NAMES,
          "severity": SEVERITY_NAMES, "status": STATUS_NAMES, "staff": STAFF_ROLE_NAMES,
          "risk": RISK_COLOUR_NAMES, "unit_kind": UNIT_KIND_NAMES, "unit_status": UNIT_STATUS_NAMES,
          "resolution": {k: (v, k) for k, v in RESOLUTION_LEVEL_ZH.items()},
          "visit_kind": VISIT_KIND_NAMES, "participant": MEETING_PARTICIPANT_NAMES,
          "logbook": LOGBOOK_COLOUR_NAMES}


def name(kind: str, key, locale: str = "zh") -> str:
    """The reader's word for a key: name("category", "dispute") → 矛盾纠纷 (or "dispute" in English)."""
    names = _NAMES[kind].get(key)
    if names is None:
        return str(key)
    return names[0] if locale == "zh" else names[1]


def names(kind: str, locale: str = "zh") -> dict:
    """Every key of one kind with the reader's word for it, in the vocabulary's order."""
    return {key: name(kind, key, locale) for key in _NAMES[kind]}

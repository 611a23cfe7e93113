"""Offline Chinese geocoding (地址解析): address text → point, level matched, confidence, text matched.

The gazetteer is built from the database — areas (区 → 镇/街道 → 村/社区 → 网格), 三零 entities, and
`places` (roads with door numbers, 小区 and their buildings, POIs, village groups 组) — into an
in-memory index, once per process. A statement-level trigger appends to `gazetteer_changes`
whenever areas, places or entities change; `gazetteer(session)` compares the newest change id with
the one its index was built from (one indexed read) and rebuilds only then.

Matching: the address is normalised (NFKC, Chinese numerals before units, 栋/幢/座 → 号楼,
村民小组/队 → 组, the redundant province/city/district prefix dropped), every gazetteer name found in
it is collected longest-first, numbers (123号, 3号楼, 5组) are attached to the road, 小区 or village
they belong to, and whatever text is left is matched against names one edit away (typos, with
same-sound characters preferred). Each candidate entry is then scored by how many other mentions
are its ancestors (a door under the road, grid, village and township named) minus those that
contradict it, so order does not matter and the deepest consistent entry wins: door → building →
小区 → group → village → township. A tie between different places is never broken by guessing: the
result is their deepest common area, marked ambiguous, with the tied candidates listed.
"""
from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass, field
from typing import Iterable

from sqlalchemy import text
from sqlalchemy.orm import Session

from geo import areas as areas_mod

# How fine each kind of entry is; a tie in score goes to the finer one.
RANK = {"building": 9, "door": 8, "compound": 7, "poi": 7, "entity": 7, "group": 6, "road": 5,
        "microgrid": 5, "grid": 4, "village": 3, "township": 2, "district": 1}
AREA_KIND = {1: "district", 2: "township", 3: "village", 4: "grid", 5: "microgrid"}
# Confidence of an unambiguous, fully supported match at each level (how sure the point is right).
LEVEL_CONFIDENCE = {"building": 0.98, "door": 0.97, "compound": 0.95, "poi": 0.95, "group": 0.9,
                    "road": 0.75, "microgrid": 0.9, "grid": 0.9, "village": 0.85,
                    "township": 0.7, "district": 0.4}

_ZH_DIGIT = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
             "八": 8, "九": 9}
_ZH_NUM = "零〇一二两三四五六七八九十百千"
_UNITS = "号楼|号院|号|组|队|栋|幢|座|单元|层|楼|室|网格|村民小组|村民组|小组|排|巷|弄"
_RE_ZH_NUMBER = re.compile(f"([{_ZH_NUM}]+)(?=(?:{_UNITS}))")
_RE_SPACE_PUNCT = re.compile(r"[\s,，。、;；:：'\"“”‘’()（）\[\]【】{}<>《》_/\\|·~!！?？*]+")
_RE_HASH = re.compile(r"(\d+)#")
_RE_BUILDING = re.compile(r"(\d+)(?:号)?(?:栋|幢|座|号楼)")
_RE_GROUP = re.compile(r"(\d+)(?:村民小组|村民组|小组|队|组)")
_RE_YARD = re.compile(r"(\d+)号院")
_RE_DASH = re.compile(r"(?<!\d)-|-(?!\d)")

# Number tokens left after the names are found, in the order they are tried.
_TOKEN_PATTERNS = [
    ("building", re.compile(r"(\d+)号楼")),
    ("grid", re.compile(r"第(\d+)网格")),
    ("door", re.compile(r"(\d+)(?:-\d+)?号")),
    ("group", re.compile(r"(\d+)组")),
    ("detail", re.compile(r"\d+(?:单元|层|楼|室|户)")),
    ("building", re.compile(r"(\d+)-\d+(?:-\d+)?")),
]
# The parent kinds a number token attaches to.
_TOKEN_PARENTS = {"door": ("road",), "building": ("compound", "poi"), "group": ("village",),
                  "grid": ("village",)}

# Words that describe a spot rather than name a place; never worth a fuzzy search.
_FILLER = ("附近", "门口", "对面", "旁边", "东侧", "西侧", "南侧", "北侧", "路口", "交叉口", "院内",
           "家中", "楼下", "门前", "东边", "西边", "南边", "北边", "东头", "西头", "南头", "北头",
           "一带", "周边")
_RE_FILLER = re.compile("|".join(_FILLER))
_RE_CJK = re.compile(r"[\u4e00-\u9fff]")

PROVINCES = ("北京", "天津", "河北", "山西", "内蒙古", "辽宁", "吉林", "黑龙江", "上海", "江苏",
             "浙江", "安徽", "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "广西",
             "海南", "重庆", "四川", "贵州", "云南", "西藏", "陕西", "甘肃", "青海", "宁夏",
             "新疆", "台湾", "香港", "澳门")
# A province name counts as a prefix only with its suffix or directly before a city (河南漯河市):
# bare, it may begin a place name (河南街道).
_RE_PROVINCE = re.compile("^(?:" + "|".join(PROVINCES) + ")(?:(?:省|市|自治区|壮族自治区|回族自治区|"
                          "维吾尔自治区|特别行政区)|(?=[\u4e00-\u9fff]{2,4}?市))")

# Characters commonly typed for one another (same pinyin via the input method), by group.
HOMOPHONES = (
    "南楠男难", "桥乔侨", "河和合何荷禾", "城成程诚承丞", "龙隆笼聋", "庄装妆桩", "王旺汪望网",
    "李理里礼鲤", "张章彰樟", "刘流留柳浏", "陈晨沉臣辰尘", "杨阳扬洋羊", "赵照兆召", "黄皇煌凰璜",
    "周州洲舟粥", "吴武五伍午舞", "徐许旭序", "孙森荪", "马玛码蚂", "朱珠竹猪株", "胡湖虎护壶葫",
    "郭国果锅", "高糕皋膏", "林琳临淋邻麟", "罗洛落螺骆", "郑正政证整", "梁良粮凉量", "谢泻卸",
    "宋送颂诵", "唐堂塘棠糖", "韩寒含汉函", "冯丰风峰锋枫蜂封", "邓灯登等", "曹草槽", "彭朋鹏蓬棚",
    "曾增憎", "肖萧晓小孝校", "田甜填", "董东冬懂栋", "袁元园源原圆远院苑愿援", "潘盘攀", "于余鱼宇雨玉裕渔",
    "蒋江将姜疆浆", "蔡菜才财材", "杜渡度堵", "叶业夜页", "苏酥", "魏卫伟位维为", "吕旅铝", "丁顶定钉",
    "任人仁忍", "沈深申身神", "姚遥摇瑶", "卢路鹿陆露芦炉", "崔翠脆", "钟中忠终众", "谭潭坛弹", "范饭凡帆繁",
    "金今津斤", "石时实十拾", "廖料聊", "贾家佳加嘉甲", "夏下厦", "付傅富府福复", "方芳坊房", "白百柏",
    "孟梦", "秦琴勤", "邱秋丘", "尹银印引", "薛雪学", "闫严颜岩盐阎言", "段断锻", "雷蕾磊", "侯后候厚",
    "史市师诗施", "陶桃逃", "郝好", "毛茂", "常长昌场厂", "岳月越", "关官观", "新心欣辛", "庙妙",
    "湾弯", "岗刚钢港", "集吉济", "店电殿", "镇震", "淞松嵩", "裴培陪", "泰太", "滨宾", "村存",
    "营赢", "山三", "道到", "花华化", "庆青清轻", "明名鸣", "兴星", "安岸", "平坪萍", "康糠", "福",
)

MAX_CANDIDATES = 10    # listed when the answer is ambiguous
MAX_ALTERNATIVES = 4   # listed after a clear best (the best first)
_TYPE_SUFFIX = set("村路街镇乡道巷区")


# -- normalisation -------------------------------------------------------------------------------
def zh_to_int(s: str) -> int | None:
    """Read a Chinese numeral (三, 十二, 二十一, 一百零三, 一零三) as an integer."""
    if not s:
        return None
    if all(c in _ZH_DIGIT for c in s):
        return int("".join(str(_ZH_DIGIT[c]) for c in s))
    section, digit = 0, None
    for c in s:
        if c in _ZH_DIGIT:
            digit = _ZH_DIGIT[c]
        elif c in "十百千":
            mult = {"十": 10, "百": 100, "千": 1000}[c]
            section += (1 if digit is None else digit) * mult
            digit = None
        else:
            return None
    return section + (digit or 0)


def _numerals(match: re.Match) -> str:
    value = zh_to_int(match.group(1))
    return match.group(1) if value is None else str(value)


@dataclass(frozen=True)
class Prefixes:
    """What an address may start with that adds nothing: the jurisdictions' own names."""

    districts: tuple[str, ...] = ()
    townships: tuple[str, ...] = ()

    def strip(self, s: str) -> str:
        for name in self.districts:
            # The district's own name says nothing inside it, wherever it was written.
            s = s.replace(name, "")
        s = _RE_PROVINCE.sub("", s, count=1)
        m = re.match(r"^[\u4e00-\u9fff]{2,4}?市", s)
        if m and any(s.startswith(t, m.end()) for t in self.townships):
            s = s[m.end():]
        for name in self.districts:
            short = re.sub("(区|县|市|旗)$", "", name)
            if len(short) >= 2 and s.startswith(short) and any(
                    s.startswith(t, len(short)) for t in self.townships):
                return s[len(short):]
        return s


def normalise(address: str, prefixes: Prefixes | None = None) -> str:
    """Normalise an address: NFKC, no spaces/punctuation, Arabic numbers, 号楼 and 组 forms, no prefix."""
    s = unicodedata.normalize("NFKC", address or "").lower()
    s = _RE_SPACE_PUNCT.sub("", s)
    s = s.replace("—", "-").replace("－", "-")
    s = _RE_DASH.sub("", s)
    s = _RE_ZH_NUMBER.sub(_numerals, s)
    s = _RE_HASH.sub(r"\1号", s)
    s = _RE_BUILDING.sub(r"\1号楼", s)
    s = _RE_GROUP.sub(r"\1组", s)
    s = _RE_YARD.sub(r"\1号", s)
    if prefixes:
        s = prefixes.strip(s) or s  # an address that is only the prefix keeps it
    return s


# -- the index -----------------------------------------------------------------------------------
@dataclass(eq=False)
class Entry:
    """One gazetteer entry: an area, a place or an entity, with its ancestry."""

    id: int
    kind: str
    name: str
    lon: float
    lat: float
    area_code: str | None
    path: tuple[str, ...]            # area codes from the root down to the entry's area
    source: str                      # "area:ID", "place:ID" or "entity:ID"
    address: str | None = None
    aliases: tuple[str, ...] = ()
    parent: "Entry | None" = None    # door → road, building → 小区, 小区 → door, group → village
    number: str | None = None
    ancestors: frozenset = frozenset()   # ids of every entry above this one
    compat: frozenset = frozenset()      # ids of areas a road runs through
    road_points: dict = field(default_factory=dict)  # road only: area entry id → (lon, lat)

    @property
    def level(self) -> str:
        return "poi" if self.kind == "entity" else self.kind


@dataclass(eq=False)
class _Mention:
    start: int
    end: int
    text: str
    candidates: dict          # entry id → quality in (0, 1]
    kind: str = "name"        # name | fuzzy | door | building | group | grid
    number: str | None = None
    novel: bool = True


class Gazetteer:
    """The in-memory index: names, numbered children, and a one-edit index for typos."""

    def __init__(self, entries: list[Entry], prefixes: Prefixes):
        self.entries = entries
        self.prefixes = prefixes
        self.names: dict[str, list[int]] = {}
        self.numbered: dict[tuple[int, str, str], list[int]] = {}  # (parent id, kind, n) → ids
        self.by_number: dict[tuple[str, str], list[int]] = {}      # (kind, n) → ids (no parent)
        self.doors: dict[int, list[tuple[int, Entry]]] = {}       # road id → sorted (n, door)
        self.area_entry: dict[str, int] = {}
        for e in entries:
            if e.kind in ("door", "building"):
                continue
            for alias in _aliases(e):
                key = normalise(alias, prefixes)
                if len(key) >= 2:
                    ids = self.names.setdefault(key, [])
                    if e.id not in ids:
                        ids.append(e.id)
            if e.source.startswith("area:"):
                self.area_entry[e.area_code] = e.id
        for e in entries:
            if e.number is None:
                continue
            if e.parent is not None:
                self.numbered.setdefault((e.parent.id, e.kind, e.number), []).append(e.id)
            self.by_number.setdefault((e.kind, e.number), []).append(e.id)
            if e.kind == "door" and e.parent is not None and e.number.isdigit():
                self.doors.setdefault(e.parent.id, []).append((int(e.number), e))
        for doors in self.doors.values():
            doors.sort(key=lambda d: d[0])
        # Longest-first scanning: for every two-character start, the name lengths that begin with it.
        starts: dict[str, set[int]] = {}
        for key in self.names:
            starts.setdefault(key[:2], set()).add(len(key))
        self.starts = {k: sorted(v, reverse=True) for k, v in starts.items()}
        self.max_len = max((len(k) for k in self.names), default=0)
        self.deletions: dict[str, set[str]] = {}
        for key, ids in self.names.items():
            if len(key) < 3 or all(entries[i].kind in ("grid", "microgrid") for i in ids):
                continue
            for i in range(len(key)):
                self.deletions.setdefault(key[:i] + key[i + 1:], set()).add(key)

    # -- matching ------------------------------------------------------------------------------
    def _exact(self, s: str) -> list[_Mention]:
        found = []
        for i in range(len(s) - 1):
            lengths = self.starts.get(s[i:i + 2])
            if not lengths:
                continue
            for length in lengths:
                piece = s[i:i + length]
                if len(piece) == length and piece in self.names:
                    found.append(_Mention(i, i + length, piece,
                                          {e: 1.0 for e in self.names[piece]}))
                    break
        return _longest_first(found)

    def _fuzzy(self, s: str, mentions: list[_Mention], covered: list[bool]) -> list[_Mention]:
        """One-edit matches over the text no name covered, seen together with the names on either
        side, so a typo at a name's edge (裴城镇生院, 海河河路) is matched as the whole name."""
        found = []
        for start, end in _gaps(covered):
            if not _RE_CJK.search(_RE_FILLER.sub("", s[start:end])):
                continue
            lo = next((m.start for m in mentions if m.end == start), start)
            hi = next((m.end for m in mentions if m.start == end), end)
            for length in range(min(hi - lo, self.max_len + 1), 2, -1):
                for a in range(max(lo, start - length + 1), min(end, hi - length + 1)):
                    q = s[a:a + length]
                    matches = self._one_edit(q)
                    if matches:
                        # A name already found plus a stray character (龙塔街道子) is no news: such
                        # a match yields to one that says something new where they overlap.
                        known = set()
                        for m in mentions:
                            if m.start < a + length and a < m.end:
                                for c in m.candidates:
                                    known |= self.entries[c].ancestors | {c}
                        found.append(_Mention(a, a + length, q, matches, "fuzzy",
                                              novel=not set(matches) <= known))
        return _longest_first(found)

    def _one_edit(self, q: str) -> dict[int, float]:
        keys: set[str] = set(self.deletions.get(q, ()))           # a character left out
        for i in range(len(q)):
            d = q[:i] + q[i + 1:]
            keys |= self.deletions.get(d, set())                  # one substituted, or swapped
            if d in self.names and len(d) >= 3:
                keys.add(d)                                       # one character too many
        out: dict[int, float] = {}
        for key in keys:
            quality = _edit_quality(q, key)
            if quality:
                for e in self.names[key]:
                    out[e] = max(out.get(e, 0.0), quality)
        return out

    def _tokens(self, s: str, covered: list[bool]) -> list[_Mention]:
        tokens = []
        for kind, pattern in _TOKEN_PATTERNS:
            for m in pattern.finditer(s):
                if any(covered[m.start():m.end()]):
                    continue
                for k in range(m.start(), m.end()):
                    covered[k] = True
                number = m.group(1) if m.groups() else None
                if number is not None:
                    number = str(int(number))
                tokens.append(_Mention(m.start(), m.end(), m.group(0), {}, kind, number))
        return tokens

    def _resolve_tokens(self, run: "_Run", tokens: list[_Mention],
                        mentions: list[_Mention]) -> None:
        for t in tokens:
            if t.kind == "detail":
                continue
            wanted = _TOKEN_PARENTS[t.kind]
            parents = [m for m in mentions
                       if any(self.entries[c].kind in wanted for c in m.candidates if c >= 0)]
            # Every name that could own the number; the nearest one before it (黄河路123号) counts
            # a little more than one after it or further away, and the scoring decides.
            order = sorted(parents, key=lambda m: (m.end > t.start, abs(t.start - m.end)))
            for rank, m in enumerate(order):
                for c, q in m.candidates.items():
                    if c < 0 or self.entries[c].kind not in wanted:
                        continue
                    q = q * (1.0 if rank == 0 else 0.95)
                    children = self.numbered.get((c, t.kind, t.number), ())
                    for child in children:
                        t.candidates[child] = max(t.candidates.get(child, 0.0), q)
                    if not children and t.kind == "door":
                        guess = self._interpolate(run, self.entries[c], int(t.number))
                        if guess is not None:
                            t.candidates[guess.id] = q
            if not t.candidates and t.kind == "group" and not parents:
                # 5组 with no village named: every village's 5组 is a candidate; the other
                # names (a township) decide, or the answer is ambiguous.
                t.candidates = {i: 0.8 for i in self.by_number.get(("group", t.number), ())}

    def _interpolate(self, run: "_Run", road: Entry, number: int) -> Entry | None:
        """A door between two known numbers on the same side of the road (odd or even)."""
        side = [(n, d) for n, d in self.doors.get(road.id, ()) if n % 2 == number % 2]
        below = [(n, d) for n, d in side if n < number]
        above = [(n, d) for n, d in side if n > number]
        if not below or not above:
            return None
        (n0, d0), (n1, d1) = below[-1], above[0]
        t = (number - n0) / (n1 - n0)
        near = d0 if t <= 0.5 else d1
        entry = Entry(id=-1 - len(run.extra), kind="door", name=f"{number}号",
                      lon=d0.lon + t * (d1.lon - d0.lon), lat=d0.lat + t * (d1.lat - d0.lat),
                      area_code=near.area_code, path=near.path,
                      source=f"interpolated:{road.source}", parent=road, number=str(number),
                      ancestors=near.ancestors)
        run.extra[entry.id] = entry
        return entry

    def geocode(self, address: str, *, alternatives: bool = True) -> dict:
        """Geocode one address; return status, best (or None) and candidates, each with level,
        confidence, area_code and the text matched.

        With alternatives=False a clear answer lists only itself (bulk imports need no runners-up);
        an ambiguous one always lists the tied candidates.
        """
        run = _Run(self, alternatives)
        s = normalise(address, self.prefixes)
        result = {"query": address, "normalised": s, "status": "not_found", "best": None,
                  "candidates": []}
        if not s:
            return result
        mentions = self._exact(s)
        covered = [False] * len(s)
        for m in mentions:
            for k in range(m.start, m.end):
                covered[k] = True
        tokens = self._tokens(s, covered)
        if not all(covered):
            mentions += self._fuzzy(s, mentions, covered)
        self._resolve_tokens(run, tokens, mentions)
        if not mentions and not any(t.candidates for t in tokens):
            return result
        scored = run.score(mentions + [t for t in tokens if t.candidates])
        contradicting = [m for m in mentions if m.kind == "name" and m not in scored[0][4]
                         and not any(_overlap(x, m) for x in scored[0][4])
                         and not run.below(scored[0][2], m)]
        if contradicting:
            # An exact name that contradicts the rest may be a typo of another name (泰和苑 for
            # 泰和佳苑): offer its one-edit neighbours too, and score again.
            for m in contradicting:
                for c, q in self._one_edit(m.text).items():
                    m.candidates.setdefault(c, q)
            for t in tokens:
                t.candidates = {}
            self._resolve_tokens(run, tokens, mentions)
            scored = run.score(mentions + [t for t in tokens if t.candidates])
        unresolved = [t for t in tokens if t.kind != "detail" and not t.candidates]
        return run.result(result, scored, mentions + [t for t in tokens if t.candidates], unresolved)

    def geocode_many(self, addresses: Iterable[str]) -> list[dict]:
        """Geocode a batch with the same index (no database round trip per address)."""
        return [self.geocode(a, alternatives=False) for a in addresses]


class _Run:
    """The state of one geocode call (interpolated doors live here, never in the shared index)."""

    def __init__(self, gazetteer: Gazetteer, alternatives: bool = True):
        self.g = gazetteer
        self.alternatives = alternatives
        self.extra: dict[int, Entry] = {}

    def entry(self, entry_id: int) -> Entry:
        return self.g.entries[entry_id] if entry_id >= 0 else self.extra[entry_id]

    def score(self, mentions: list[_Mention]) -> list[tuple]:
        """Score every candidate: its own quality, plus each mention naming one of its ancestors,
        minus each exact mention that contradicts it (neither above nor below it)."""
        scored = []
        for m in mentions:
            for cid, quality in m.candidates.items():
                e = self.entry(cid)
                score, support, rest = quality, [m], []
                for other in mentions:
                    if other is m:
                        continue
                    best = max((q for c, q in other.candidates.items()
                                if c in e.ancestors or c in e.compat), default=None)
                    if best is not None:
                        score += best
                        support.append(other)
                    elif other.kind != "fuzzy":
                        rest.append(other)
                # Text read another way by a supporting match (中村 inside 周中村) is no evidence
                # against it; any other exact name that fits nowhere under e is.
                for other in rest:
                    if not any(_overlap(s, other) for s in support) and not self.below(e, other):
                        score -= 1.0
                scored.append((score, RANK.get(e.kind, 0), e, m, support))
        scored.sort(key=lambda r: (-r[0], -r[1], r[2].id))
        return scored

    def below(self, e: Entry, mention: _Mention) -> bool:
        """Whether some candidate of the mention lies under e (or, for a road, crosses e)."""
        return any(e.id in self.entry(c).ancestors or e.id in self.entry(c).compat
                   for c in mention.candidates)

    def conflicts(self, row: tuple, mentions: list[_Mention]) -> int:
        """How many exact names contradict the row's entry."""
        e, support = row[2], row[4]
        return sum(1 for m in mentions if m.kind != "fuzzy" and m not in support
                   and not any(_overlap(x, m) for x in support) and not self.below(e, m))

    def result(self, result: dict, scored: list, mentions: list[_Mention],
               unresolved: list[_Mention]) -> dict:
        top_score, top_rank = scored[0][0], scored[0][1]
        tied: list[tuple] = []
        for row in scored:
            if row[0] < top_score - 1e-9 or row[1] < top_rank:
                break
            if not any(_same_place(row[2], t[2]) for t in tied):
                tied.append(row)
        conflicts = self.conflicts(scored[0], mentions)
        rows = tied if len(tied) > 1 else scored
        candidates: list[dict] = []
        kept: list[Entry] = []
        for score, rank, e, m, support in rows:
            if any(_same_place(e, k) for k in kept):
                continue
            kept.append(e)
            candidates.append(self.describe(e, support, unresolved,
                                            self.conflicts((score, rank, e, m, support), mentions),
                                            share=len(tied)))
            if len(candidates) >= (MAX_CANDIDATES if len(tied) > 1 else
                                   MAX_ALTERNATIVES if self.alternatives else 1):
                break
        result["candidates"] = candidates
        if len(tied) == 1:
            result["status"] = "ok"
            result["best"] = candidates[0]
            return result
        result["status"] = "ambiguous"
        # Not a guess: the deepest area every tied candidate lies in (township or finer).
        common = [c for c in _common_prefix([t[2].path for t in tied])
                  if self.g.entries[self.g.area_entry[c]].kind not in ("district",)]
        if common:
            area = self.g.entries[self.g.area_entry[common[-1]]]
            support = [m for m in mentions
                       if any(c == area.id or c in area.ancestors for c in m.candidates)]
            result["best"] = self.describe(area, support, unresolved, conflicts, share=1)
            result["best"]["ambiguous"] = True
        return result

    def describe(self, e: Entry, support: list[_Mention], unresolved: list[_Mention],
                 conflicts: int, share: int) -> dict:
        lon, lat = e.lon, e.lat
        if e.kind == "road":
            # A road without a number: the point where it runs through the finest area named.
            inside = [(RANK.get(self.entry(c).kind, 0), c) for m in support for c in m.candidates
                      if c in e.road_points]
            if inside:
                lon, lat = e.road_points[max(inside)[1]]
        quality = min(max(m.candidates.values()) for m in support) if support else 1.0
        confidence = LEVEL_CONFIDENCE.get(e.level, 0.5) * quality
        finer = [t for t in unresolved if RANK.get(t.kind, 0) > RANK.get(e.kind, 0)]
        confidence *= 0.8 ** len(finer) * 0.7 ** conflicts / share
        if e.source.startswith("interpolated"):
            confidence *= 0.9
        matched = "".join(m.text for m in sorted(support, key=lambda m: m.start))
        return {"lon": round(lon, 7), "lat": round(lat, 7), "level": e.level,
                "confidence": round(confidence, 3), "area_code": e.area_code, "matched": matched,
                "name": e.name, "kind": e.kind, "address": e.address, "path": list(e.path),
                "source": e.source, "interpolated": e.source.startswith("interpolated"),
                "fallback_from": finer[0].kind if finer else None}


def _overlap(a: _Mention, b: _Mention) -> bool:
    return a.start < b.end and b.start < a.end


def _same_place(a: Entry, b: Entry) -> bool:
    """Two entries for one spot (a POI and the 三零 entity at it): same name, within ~30 m."""
    if a is b or a.id == b.id:
        return True
    return (a.name == b.name and abs(a.lon - b.lon) < 3e-4 and abs(a.lat - b.lat) < 3e-4)


def _aliases(e: Entry) -> list[str]:
    names = [e.name]
    if e.kind == "township":
        short = re.sub("(街道办事处|街道|办事处|镇|乡)$", "", e.name)
        if len(short) >= 2:
            names += [short]
            if e.name.endswith("街道"):
                names += [short + "办事处", short + "街道办", short + "办"]
            elif e.name.endswith("镇"):
                names += [short + "乡"]
    elif e.kind == "village":
        short = re.sub("(社区|村)$", "", e.name)
        if len(short) >= 2:
            names += [short]
        if e.name.endswith("社区"):
            names += [short + "居委会", short + "社区居委会", short + "居民委员会"]
        elif e.name.endswith("村"):
            names += [e.name + "委会", short + "村民委员会"]
    elif e.kind == "group" and e.parent is not None and e.number:
        names.append(f"{e.parent.name}{e.number}组")
        short = re.sub("(社区|村)$", "", e.parent.name)
        if len(short) >= 2:
            names.append(f"{short}{e.number}组")
    return names + list(e.aliases)


def _longest_first(found: list[_Mention]) -> list[_Mention]:
    taken: list[_Mention] = []
    for m in sorted(found, key=lambda m: (not m.novel, -(m.end - m.start), m.start)):
        if all(m.end <= t.start or m.start >= t.end for t in taken):
            taken.append(m)
    return sorted(taken, key=lambda m: m.start)


def _gaps(covered: list[bool]) -> list[tuple[int, int]]:
    out, start = [], None
    for i, c in enumerate(covered + [True]):
        if not c and start is None:
            start = i
        elif c and start is not None:
            out.append((start, i))
            start = None
    return out


def _sound_group() -> dict[str, str]:
    """Each character of HOMOPHONES → one representative of its (merged) group."""
    parent: dict[str, str] = {}

    def find(c):
        while parent.setdefault(c, c) != c:
            c = parent[c]
        return c

    for group in HOMOPHONES:
        for c in group[1:]:
            parent[find(c)] = find(group[0])
    return {c: find(c) for c in parent}


_SOUND = _sound_group()


def _edit_quality(q: str, key: str) -> float:
    """How good a one-edit match of q for key is: 0.9 same sound, 0.8 a character left out, added
    or swapped, 0.7 another substituted, 0 if farther (or only the kind of place differs)."""
    if q == key:
        return 1.0
    lq, lk = len(q), len(key)
    if lq == lk:
        diff = [i for i in range(lq) if q[i] != key[i]]
        if len(diff) == 1:
            a, b = q[diff[0]], key[diff[0]]
            if diff[0] == lq - 1 and a in _TYPE_SUFFIX and b in _TYPE_SUFFIX:
                return 0.0  # another kind of place, not a typo (商南村 / 商南路)
            return 0.9 if a in _SOUND and _SOUND.get(a) == _SOUND.get(b) else 0.7
        if len(diff) == 2 and diff[1] == diff[0] + 1 and q[diff[0]] == key[diff[1]] \
                and q[diff[1]] == key[diff[0]]:
            return 0.8
        return 0.0
    if abs(lq - lk) != 1 or min(lq, lk) < 3:
        return 0.0
    short, long_ = (q, key) if lq < lk else (key, q)
    for i in range(len(long_)):
        if long_[:i] + long_[i + 1:] == short:
            return 0.8
    return 0.0


def _common_prefix(paths: list[tuple[str, ...]]) -> list[str]:
    out = []
    for codes in zip(*paths):
        if all(c == codes[0] for c in codes):
            out.append(codes[0])
        else:
            break
    return out


# -- building the index from the database ----------------------------------------------------------
_AREAS_SQL = """
    SELECT a.id, a.code, a.name, a.level, a.path::text AS path, a.attrs->>'official_name' AS official,
           ST_X(p) AS lon, ST_Y(p) AS lat
      FROM areas a CROSS JOIN LATERAL (SELECT ST_PointOnSurface(a.geom) AS p) s
     ORDER BY a.level, a.code
"""
# Polygons (小区) are represented by their centroid when it lies inside, lines (roads) by a point
# on them; metric accuracy is not needed here, only a point that is inside the feature.
_PLACES_SQL = """
    SELECT p.id, p.name, p.kind, p.parent_id, p.address, p.attrs, a.code AS area_code,
           ST_X(pt) AS lon, ST_Y(pt) AS lat
      FROM places p
      LEFT JOIN areas a ON a.id = p.area_id
      CROSS JOIN LATERAL (SELECT CASE
            WHEN GeometryType(p.geom) IN ('POINT') THEN p.geom
            WHEN GeometryType(p.geom) IN ('POLYGON', 'MULTIPOLYGON')
                 AND ST_Contains(p.geom, ST_Centroid(p.geom)) THEN ST_Centroid(p.geom)
            WHEN GeometryType(p.geom) = 'LINESTRING' THEN ST_LineInterpolatePoint(p.geom, 0.5)
            ELSE ST_PointOnSurface(p.geom) END AS pt) s
     WHERE p.geom IS NOT NULL
     ORDER BY p.id
"""
# Where each road runs through each township and village: the point used for "沙北街道黄河路".
_ROAD_AREAS_SQL = """
    SELECT p.id AS place_id, a.code, ST_X(pt) AS lon, ST_Y(pt) AS lat
      FROM places p
      JOIN areas a ON a.level IN (2, 3) AND a.geom && p.geom AND ST_Intersects(a.geom, p.geom)
      CROSS JOIN LATERAL (
            SELECT ST_LineInterpolatePoint(d.geom, 0.5) AS pt
              FROM ST_Dump(ST_Intersection(a.geom, p.geom)) d
             WHERE GeometryType(d.geom) = 'LINESTRING'
             ORDER BY ST_Length(d.geom) DESC LIMIT 1) s
     WHERE p.kind = 'road'
"""
_ENTITIES_SQL = """
    SELECT e.id, e.name, e.kind, e.address, a.code AS area_code, ST_X(pt) AS lon, ST_Y(pt) AS lat
      FROM entities e
      LEFT JOIN areas a ON a.id = e.area_id
      CROSS JOIN LATERAL (SELECT ST_PointOnSurface(e.geom) AS pt) s
     WHERE e.kind <> 'village' AND e.geom IS NOT NULL
     ORDER BY e.id
"""
_RE_TRAILING_NUMBER = re.compile(r"(\d+)(?:-\d+)?(号楼|号|组|网格)?$")


def _number(value) -> str | None:
    """The house, building or group number in a value (12, "12号", "三组"), or None."""
    if value is None:
        return None
    m = _RE_TRAILING_NUMBER.search(normalise(str(value)))
    return str(int(m.group(1))) if m else None


def build(session: Session) -> Gazetteer:
    """Read areas, places and entities and build the index."""
    entries: list[Entry] = []
    area_by_code: dict[str, Entry] = {}
    codes_by_id: dict[int, str] = {}
    rows = session.execute(text(_AREAS_SQL)).mappings().all()
    for r in rows:
        codes_by_id[r["id"]] = r["code"]
    for r in rows:
        ids = [int(x) for x in r["path"].split(".")] if r["path"] else [r["id"]]
        path = tuple(codes_by_id[i] for i in ids if i in codes_by_id)
        e = Entry(len(entries), AREA_KIND.get(r["level"], "grid"), r["name"], r["lon"], r["lat"],
                  r["code"], path, f"area:{r['id']}",
                  aliases=(r["official"],) if r["official"] else ())
        entries.append(e)
        area_by_code[r["code"]] = e
    for e in entries:
        e.ancestors = frozenset(area_by_code[c].id for c in e.path[:-1])
    prefixes = Prefixes(
        districts=tuple(sorted({e.name for e in entries if e.kind == "district"}, key=len, reverse=True)),
        townships=tuple(sorted({n for e in entries if e.kind == "township" for n in _aliases(e)},
                               key=len, reverse=True)))

    def area_chain(code: str | None) -> tuple[tuple[str, ...], frozenset]:
        a = area_by_code.get(code) if code else None
        if a is None:
            return (), frozenset()
        return a.path, a.ancestors | {a.id}

    # Villages, for the numbered children (组, 第N网格) of an area.
    def village_of(path: tuple[str, ...]) -> Entry | None:
        for c in reversed(path):
            if area_by_code[c].kind == "village":
                return area_by_code[c]
        return None

    for a in list(entries):
        if a.kind in ("grid", "microgrid"):
            m = re.search(r"第(\d+)网格$", normalise(a.name))
            v = village_of(a.path[:-1])
            if m and v is not None:
                a.parent, a.number = v, str(int(m.group(1)))

    places = session.execute(text(_PLACES_SQL)).mappings().all()
    place_entry: dict[int, Entry] = {}
    for r in places:
        path, anc = area_chain(r["area_code"])
        e = Entry(len(entries), r["kind"], r["name"], r["lon"], r["lat"], r["area_code"], path,
                  f"place:{r['id']}", address=r["address"], ancestors=anc)
        entries.append(e)
        place_entry[r["id"]] = e
    for r in places:
        e = place_entry[r["id"]]
        parent = place_entry.get(r["parent_id"]) if r["parent_id"] else None
        attrs = r["attrs"] or {}
        if e.kind in ("door", "building"):
            e.number = _number(attrs.get("number")) or _number(e.name)
            e.parent = parent
        elif e.kind == "group":
            e.number = _number(attrs.get("group") or e.name)
            e.parent = village_of(e.path)
        elif e.kind == "compound":
            e.parent = parent
    for e in place_entry.values():
        up, seen = e.parent, set()
        chain = set()
        while up is not None and up.id not in seen:
            seen.add(up.id)
            chain.add(up.id)
            chain |= up.ancestors if up.source.startswith("area:") else set()
            up = up.parent if not up.source.startswith("area:") else None
        e.ancestors = e.ancestors | chain
    if any(e.kind == "road" for e in place_entry.values()):
        for r in session.execute(text(_ROAD_AREAS_SQL)).mappings():
            road = place_entry.get(r["place_id"])
            area = area_by_code.get(r["code"])
            if road is None or area is None:
                continue
            road.compat = road.compat | {area.id} | area.ancestors
            road.road_points[area.id] = (r["lon"], r["lat"])
    for r in session.execute(text(_ENTITIES_SQL)).mappings():
        path, anc = area_chain(r["area_code"])
        entries.append(Entry(len(entries), "entity", r["name"], r["lon"], r["lat"], r["area_code"],
                             path, f"entity:{r['id']}", address=r["address"], ancestors=anc))
    return Gazetteer(entries, prefixes)


# -- the per-process cache -------------------------------------------------------------------------
_cache: dict[str, tuple[int, Gazetteer]] = {}
_lock = threading.Lock()


def current_version(session: Session) -> int:
    """The newest gazetteer change id (one backward index scan)."""
    return int(session.execute(text("SELECT COALESCE(max(id), 0) FROM gazetteer_changes")).scalar())


def gazetteer(session: Session) -> Gazetteer:
    """The process's index for this database, rebuilt when areas, places or entities changed."""
    key = session.get_bind().engine.url.render_as_string(hide_password=True)
    version = current_version(session)  # read first: data read after it can only be newer
    cached = _cache.get(key)
    if cached and cached[0] == version:
        return cached[1]
    with _lock:
        cached = _cache.get(key)
        if cached and cached[0] == version:
            return cached[1]
        index = build(session)
        _cache[key] = (version, index)
        return index


def invalidate() -> None:
    """Forget every cached index (the next call rebuilds)."""
    with _lock:
        _cache.clear()


def geocode(session: Session, address: str) -> dict:
    """Geocode one address against the current gazetteer."""
    if address is None or not str(address).strip():
        from geo.errors import InvalidInput

        raise InvalidInput("q", "q must be a non-empty address, e.g. 郾城区沙北街道黄河路123号")
    if len(address) > 300:
        from geo.errors import InvalidInput

        raise InvalidInput("q", f"q must be at most 300 characters; got {len(address)}")
    return gazetteer(session).geocode(str(address))


# -- reverse -----------------------------------------------------------------------------------
_NEAREST_SQL = """
    WITH pt AS (SELECT ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) AS g),
    near AS (
        (SELECT 'place' AS source, p.id, p.name, p.kind, p.address, p.geom
           FROM places p, pt WHERE p.geom IS NOT NULL AND p.kind <> 'road'
          ORDER BY p.geom <-> pt.g LIMIT 12)
        UNION ALL
        (SELECT 'entity', e.id, e.name, e.kind, e.address, e.geom
           FROM entities e, pt WHERE e.geom IS NOT NULL AND e.kind <> 'village'
          ORDER BY e.geom <-> pt.g LIMIT 6))
    SELECT source, id, name, kind, address,
           ST_Distance(near.geom::geography, pt.g::geography) AS distance_m,
           ST_X(ST_ClosestPoint(near.geom, pt.g)) AS lon, ST_Y(ST_ClosestPoint(near.geom, pt.g)) AS lat
      FROM near, pt
     ORDER BY distance_m, CASE kind WHEN 'building' THEN 0 WHEN 'compound' THEN 1 WHEN 'door' THEN 2
                                    ELSE 3 END, id
     LIMIT 5
"""
# `<->` against a constant point is answered by the GiST index on geom (k-nearest-neighbour scan);
# the distances themselves are then measured on the geography type, in metres.
NEAREST_MAX_M = 1000.0


def reverse(session: Session, lon, lat, crs: str | None = "wgs84") -> dict:
    """Point → area path (district → grid) and the nearest named places within 1 km."""
    found = areas_mod.lookup(session, lon, lat, crs)
    wlon, wlat = found.wgs84
    rows = session.execute(text(_NEAREST_SQL), {"lon": wlon, "lat": wlat}).mappings().all()
    nearby = [{"name": r["name"], "kind": r["kind"], "address": r["address"],
               "distance_m": round(float(r["distance_m"]), 1), "lon": r["lon"], "lat": r["lat"]}
              for r in rows if r["distance_m"] <= NEAREST_MAX_M]
    body = found.as_dict()
    body["nearest"] = nearby[0] if nearby else None
    body["nearby"] = nearby
    body["address"] = _describe_spot(found.path, nearby[0] if nearby else None)
    return body


def _describe_spot(path: list[dict], place: dict | None) -> str | None:
    names = "".join(a["name"] for a in path if a["level"] in (1, 2, 3))
    if place is None:
        return names or None
    spot = place["address"] or place["name"]
    if place["kind"] == "door" and place["address"]:
        spot = place["address"]
    if names and spot.startswith(names[:2]):
        names = ""
    near = "" if place["distance_m"] < 5 else f"附近{round(place['distance_m'])}米"
    return f"{names}{spot}{near}"

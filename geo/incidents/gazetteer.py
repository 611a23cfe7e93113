"""The gazetteer index (地名库) in memory: names, numbered children (doors, buildings, groups), a
one-edit index for typos with same-sound characters preferred, and the scoring that picks the
deepest consistent entry — never a guess between two places.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from geo.incidents.addresses import (
    HOMOPHONES,
    RE_CJK,
    RE_FILLER,
    TOKEN_PARENTS,
    TOKEN_PATTERNS,
    Prefixes,
    normalise,
)

# How fine each kind of entry is; a tie in score goes to the finer one.
RANK = {"building": 9, "door": 8, "compound": 7, "poi": 7, "entity": 7, "group": 6, "road": 5,
        "microgrid": 5, "grid": 4, "village": 3, "township": 2, "district": 1}
AREA_KIND = {1: "district", 2: "township", 3: "village", 4: "grid", 5: "microgrid"}
# Confidence of an unambiguous, fully supported match at each level (how sure the point is right).
LEVEL_CONFIDENCE = {"building": 0.98, "door": 0.97, "compound": 0.95, "poi": 0.95, "group": 0.9,
                    "road": 0.75, "microgrid": 0.9, "grid": 0.9, "village": 0.85,
                    "township": 0.7, "district": 0.4}


MAX_CANDIDATES = 10    # listed when the answer is ambiguous
MAX_ALTERNATIVES = 4   # listed after a clear best (the best first)
_TYPE_SUFFIX = set("村路街镇乡道巷区")


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
    parent: Entry | None = None    # door → road, building → 小区, 小区 → door, group → village
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
        self._index_names(entries, prefixes)
        self._index_numbers(entries)
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

    def _index_names(self, entries: list[Entry], prefixes: Prefixes) -> None:
        """Every name and alias (normalised) of what is found by name; doors and buildings by number."""
        for e in entries:
            if e.kind in ("door", "building"):
                continue
            for alias in aliases_of(e):
                key = normalise(alias, prefixes)
                if len(key) >= 2:
                    ids = self.names.setdefault(key, [])
                    if e.id not in ids:
                        ids.append(e.id)
            if e.source.startswith("area:") and e.area_code is not None:
                self.area_entry[e.area_code] = e.id

    def _index_numbers(self, entries: list[Entry]) -> None:
        """Numbered entries under their parent and by number alone; each road's doors in order."""
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
            if not RE_CJK.search(RE_FILLER.sub("", s[start:end])):
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
        for kind, pattern in TOKEN_PATTERNS:
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

    def _resolve_tokens(self, run: _Run, tokens: list[_Mention],
                        mentions: list[_Mention]) -> None:
        for t in tokens:
            if t.kind == "detail" or t.number is None:
                continue
            wanted = TOKEN_PARENTS[t.kind]
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

    def _interpolate(self, run: _Run, road: Entry, number: int) -> Entry | None:
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
        result: dict[str, Any] = {"query": address, "normalised": s, "status": "not_found",
                                  "best": None, "candidates": []}
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


def aliases_of(e: Entry) -> list[str]:
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

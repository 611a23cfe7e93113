"""What a boundary import found: the report, its issues with their ways through, the features as
read from the file, and the caller's words for the import's options (`Hints`)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from geo.messages import joined, msg
from geo.vocabulary import LEVELS

GEOMETRY_PROBLEMS = ("no_geometry", "not_polygon", "invalid_geometry", "swapped_coordinates",
                     "out_of_range")
# What a suggested option does, said after it where it is not plain from its name.
WAY_NOTES = {"repair": "GEOS MakeValid as ST_MakeValid; the area change is reported",
             "merge_duplicates": "dissolves them into one area",
             "fit": "clips to the parent and gives slivers to the neighbour with the longest "
                    "shared edge",
             "parent_by_location": "the level above with the largest overlap"}
# What a suggestion shows where the value is the caller's to choose.
PLACEHOLDERS = {"code_prefix": "PREFIX", "crs": "EPSG:n", "parent": "CODE", "parent_field": "FIELD",
                "code_field": "FIELD", "name_field": "FIELD", "level": "LEVEL", "layer": "LAYER"}


@dataclass(frozen=True)
class Hints:
    """How a caller spells the import's options when a report suggests a way through.

    `names` maps an option of `ingest.load` to the caller's word for it (the command line's
    `--skip-bad`, the API's form field `skip_bad`); `joiner` goes between an option and its value
    and `on` after an option that is switched on. Without hints, the options read as keyword
    arguments of `load` (`skip_bad=True`, `code_prefix='PREFIX'`).
    """

    names: Mapping[str, str] = field(default_factory=dict)
    joiner: str = "="
    on: str = "=True"
    quote: bool = True

    def option(self, name: str, value=True) -> str:
        """One option as the caller writes it; a value of None shows a placeholder."""
        word = self.names.get(name, name)
        if value is True:
            return word + self.on
        shown = PLACEHOLDERS.get(name, "VALUE") if value is None else str(value)
        if self.quote and not isinstance(value, (int, float)):
            shown = repr(shown)
        return f"{word}{self.joiner}{shown}"

    def way(self, options: Mapping, *, noted: bool = False) -> str:
        """A set of options taken together, as the caller writes them (with what they do)."""
        said = " ".join(self.option(k, v) for k, v in options.items())
        notes = [WAY_NOTES[k] for k in options if k in WAY_NOTES]
        return f"{said} ({'; '.join(notes)})" if noted and notes else said

    def field(self, name: str) -> str:
        """The caller's name of the input an error is about (the API's `file` for the path)."""
        return self.names.get(name, name) if name == "path" else name


@dataclass
class Issue:
    """One thing wrong (or worth knowing) about the file, a feature of it, or a parent area."""

    kind: str
    message: str
    feature: int | None = None  # 1-based, in file order
    code: str | None = None
    fix: str | None = None      # the ways through, in the caller's words
    advice: str | None = None   # what to do outside the import (fix the file, import parents)
    # Each way through as the options of `load` that take it ({option: value}; a value of None
    # is the caller's to choose), so that a program can follow it as well as a person.
    ways: list[dict] = field(default_factory=list)


@dataclass
class Report:
    """What an import found and did; `refused` when it wrote nothing because of errors."""

    path: str  # the name the file is known by (an upload's own name, never a server's path)
    level: int
    source_crs: str | None = None
    features: int = 0
    dry_run: bool = False
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    skipped: list[Issue] = field(default_factory=list)
    repaired: list[dict] = field(default_factory=list)
    merged: list[dict] = field(default_factory=list)
    fitted: list[str] = field(default_factory=list)
    located: list[dict] = field(default_factory=list)  # parents found by location, per feature
    created: list[str] = field(default_factory=list)
    change_id: int | None = None
    hints: Hints = field(default_factory=Hints, repr=False)

    def issue(self, kind: str, message: str, *, feature: int | None = None, code: str | None = None,
              ways: list[dict] | None = None, advice: str | None = None) -> Issue:
        """An Issue whose ways through are also told in the caller's words (`advice` first)."""
        ways = [dict(w) for w in ways or []]
        told = [advice] if advice else []
        told += [self.hints.way(w, noted=True) for w in ways]
        return Issue(kind, message, feature=feature, code=code,
                     fix=", or ".join(told) if told else None, advice=advice, ways=ways)

    def error(self, kind: str, message: str, **kw) -> Issue:
        found = self.issue(kind, message, **kw)
        self.errors.append(found)
        return found

    def warn(self, kind: str, message: str, **kw) -> Issue:
        found = self.issue(kind, message, **kw)
        self.warnings.append(found)
        return found

    @property
    def refused(self) -> bool:
        return bool(self.errors)

    def as_dict(self) -> dict:
        out = asdict(self)
        out.pop("hints")
        out["refused"] = self.refused
        out["level_name"] = LEVELS.get(self.level)
        return out

    def summary(self) -> str:
        if self.refused:
            fixes = sorted({self.hints.way(w) for e in self.errors for w in e.ways}
                           | {e.advice for e in self.errors if e.advice})
            if fixes:
                return msg("refused: {count} problem(s) in {path}, nothing written; a way through: {ways}",
                           count=len(self.errors), path=self.path, ways=joined(fixes))
            return msg("refused: {count} problem(s) in {path}, nothing written", count=len(self.errors),
                       path=self.path)
        verb = "would import" if self.dry_run else "imported"
        return (f"{verb} {len(self.created)} area(s) at level {self.level} "
                f"({LEVELS.get(self.level)}) from {self.features} feature(s)"
                + (f", {len(self.skipped)} skipped" if self.skipped else "")
                + (f" — change #{self.change_id}" if self.change_id else ""))

    def lines(self) -> list[str]:
        """The report as plain lines for the command line."""
        out = [f"{Path(self.path).name}: {self.features} feature(s), CRS {self.source_crs}"]
        for title, issues in (("error", self.errors), ("skipped", self.skipped),
                              ("note", self.warnings)):
            for i in issues:
                where = f"feature {i.feature}" if i.feature else ""
                where += f" [{i.code}]" if i.code else ""
                hint = f"  (way through: {i.fix})" if i.fix else ""
                out.append(f"  {title:<7} {i.kind:<20} {where + ': ' if where else ''}{i.message}{hint}")
        for r in self.repaired:
            out.append(f"  repaired feature {r['feature']} [{r['code']}]: {r['before_m2']:.2f} m² → "
                       f"{r['after_m2']:.2f} m² ({r['change_m2']:+.3g} m², {r['change_pct']:+.3g} %): {r['reason']}")
        for m in self.merged:
            out.append(f"  merged features {', '.join(map(str, m['features']))} into one area "
                       f"{m['code']}")
        for p in self.located:
            out.append(f"  located feature {p['feature']} [{p['code']}] in {p['parent']} "
                       f"({p['share_pct']:.1f} % of it inside)")
        out.extend(f"  fitted {line}" for line in self.fitted)
        out.append(self.summary())
        return out


@dataclass
class Feature:
    index: int            # 1-based
    code: str | None
    name: str | None
    parent_ref: str | None
    props: dict
    wkb: bytes | None
    parent_id: int | None = None
    bad: bool = False
    geom_bad: bool = False  # its geometry cannot be used at all (not only its code)
    columns: dict = field(default_factory=dict)  # what goes into the area's own columns
    staff: dict = field(default_factory=dict)    # role → how many posts (一长两员)


def add_bad(report: Report, f: Feature, kind: str, message: str, *, ways: list[dict] | None = None,
            advice: str | None = None) -> None:
    """Mark a feature bad; skipping it (`skip_bad`) is always one way through."""
    f.bad = True
    f.geom_bad = f.geom_bad or kind in GEOMETRY_PROBLEMS
    ways = list(ways or [])
    if {"skip_bad": True} not in ways:
        ways.append({"skip_bad": True})
    report.error(kind, message, feature=f.index, code=f.code, ways=ways, advice=advice)

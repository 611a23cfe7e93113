"""What a boundary import found: the report, its issues, and the features as read from the file."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from geo.vocabulary import LEVELS

GEOMETRY_PROBLEMS = ("no_geometry", "not_polygon", "invalid_geometry", "swapped_coordinates",
                     "out_of_range")


@dataclass
class Issue:
    """One thing wrong (or worth knowing) about the file, a feature of it, or a parent area."""

    kind: str
    message: str
    feature: int | None = None  # 1-based, in file order
    code: str | None = None
    fix: str | None = None      # the option that offers a way through


@dataclass
class Report:
    """What an import found and did; `refused` when it wrote nothing because of errors."""

    path: str
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
    created: list[str] = field(default_factory=list)
    change_id: int | None = None

    @property
    def refused(self) -> bool:
        return bool(self.errors)

    def as_dict(self) -> dict:
        out = asdict(self)
        out["refused"] = self.refused
        out["level_name"] = LEVELS.get(self.level)
        return out

    def summary(self) -> str:
        if self.refused:
            fixes = sorted({e.fix for e in self.errors if e.fix})
            return (f"refused: {len(self.errors)} problem(s) in {self.path}, nothing written"
                    + (f"; a way through: {', '.join(fixes)}" if fixes else ""))
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


def add_bad(report, f: Feature, kind: str, message: str, fix: str | None = None) -> None:
    f.bad = True
    f.geom_bad = f.geom_bad or kind in GEOMETRY_PROBLEMS
    report.errors.append(Issue(kind, message, feature=f.index, code=f.code, fix=fix))

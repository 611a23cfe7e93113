"""Who may see and do what, defined once.

A `Scope` is the set of area subtrees someone may act in (an ltree path per subtree root, or
everywhere). An `Audience` is a role with its scope — or the public — and is what every reader of
incidents, areas and analytics takes: the REST API, heat, hot spots, the review, reports, risk,
scorecards, live events, dispatch, duplicates, tiles and exports. Nothing reads `incidents`
directly: readers select from `incidents_for(exact, everywhere, scope)` (migration 0009), the one
relation that applies the scope and generalises sensitive incidents, so a new reader cannot forget.

The rules:
- Area codes coming from outside are parsed strictly (exact text, nothing trimmed); an unknown
  code is NotFound before any scope decision is taken.
- A scoped user reads and writes only inside their subtrees; an edit is authorised on every area
  it touches before and after, not only the areas it names.
- The roles that act on incidents (admin, dispatcher, grid worker) see a sensitive incident's
  exact point, address and reporter; every other audience sees it at its grid's label point
  (`areas.label_point`), without address, description, reporter or geocoding details, and its
  analytics see it there too.
- Analytics for those generalising audiences have floors, so a fine kernel, a small hexagon or a
  one-second window cannot locate one incident: a heat bandwidth of at least
  `GENERALISED_MIN_BANDWIDTH_M`, hexagons of at least `GENERALISED_MIN_HEX_M`, and whole local days.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from .errors import Forbidden, InvalidInput, NotFound
from .messages import joined, msg
from .vocabulary import PUBLIC, ROLES

# The roles that act on incidents and so see a sensitive one exactly (within their scope).
EXACT_ROLES = ("admin", "dispatcher", "grid_worker")
# Floors of the analytics for audiences that see sensitive incidents generalised.
GENERALISED_MIN_BANDWIDTH_M = 200.0
GENERALISED_MIN_HEX_M = 250.0
GENERALISED_MIN_WINDOW = timedelta(days=1)

# An area code: letters, digits and . _ - (no spaces, no control characters), at most 40.
CODE = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.\-]{0,39}")


def parse_code(value, field: str = "area") -> str:
    """An area code exactly as given, or InvalidInput: nothing is trimmed or guessed."""
    if not isinstance(value, str) or not CODE.fullmatch(value):
        raise InvalidInput(field, msg("{field} must be an area code (letters, digits, '.', '_' or '-', "
                                      "no spaces); got {got}", field=field, got=repr(value)))
    return value


def area_row(session: Session, code, field: str = "area"):
    """The area with exactly this code (id, code, name, level, path), or NotFound naming `field`."""
    key = parse_code(code, field)
    row = session.execute(text("SELECT id, code, name, level, path::text AS path FROM areas "
                               "WHERE code = :c"), {"c": key}).mappings().first()
    if row is None:
        raise NotFound(msg("no area with code {code!r}", code=key), field=field)
    return row


def _inside(path: str | None, roots: tuple[str, ...]) -> bool:
    return path is not None and any(path == r or path.startswith(r + ".") for r in roots)


@dataclass(frozen=True)
class Scope:
    """The area subtrees someone may act in: their roots' codes and ltree paths, or everywhere."""

    codes: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    everywhere: bool = False

    @classmethod
    def all(cls) -> Scope:
        return cls(everywhere=True)

    @classmethod
    def of_codes(cls, session: Session, codes, field: str = "scope") -> Scope:
        """The scope rooted at these area codes (each must exist)."""
        rows = [area_row(session, c, field) for c in codes]
        return cls(tuple(r["code"] for r in rows), tuple(r["path"] for r in rows))

    def sql(self, path: str = "a.path", param: str = "scope_paths") -> tuple[str, dict]:
        """A SQL condition true for rows whose ltree `path` lies in the scope, and its parameters.

        `path <@ ltree[]` is answered by the GiST index on areas.path.
        """
        if self.everywhere:
            return "true", {}
        return f"{path} <@ CAST(:{param} AS ltree[])", {param: list(self.paths)}

    def covers(self, path: str | None) -> bool:
        """Whether an area (by its ltree path) lies in the scope."""
        return self.everywhere or _inside(path, self.paths)

    def area(self, session: Session, code, field: str = "area"):
        """Resolve an area code from outside and check it: NotFound, then Forbidden if outside."""
        row = area_row(session, code, field)
        if not self.covers(row["path"]):
            raise Forbidden(self.outside(row["code"]), field=field)
        return row

    def require_ids(self, session: Session, ids, field: str = "areas") -> None:
        """Forbidden unless every area id lies in the scope (what an edit touches, before and after)."""
        if self.everywhere or not ids:
            return
        where, params = self.sql()
        outside = session.execute(text(
            f"SELECT a.code FROM areas a WHERE a.id = ANY(:ids) AND NOT ({where}) ORDER BY a.code"),
            {"ids": sorted(set(ids)), **params}).scalars().all()
        if outside:
            raise Forbidden(msg("this would change {codes}, outside your scope ({scope})",
                                codes=joined(outside, ", "), scope=joined(self.codes, ", ")), field=field)

    def outside(self, code: str):
        """What a reader is told of an area outside the scope."""
        return msg("area {code} is outside your scope ({scope})", code=code, scope=joined(self.codes, ", "))

    def home(self, session: Session) -> str:
        """The area a map or a report opens on: the first root of the scope, else the home area."""
        if self.codes:
            return self.codes[0]
        return home_area(session)


def home_area(session: Session) -> str:
    """The jurisdiction an unscoped user starts in: the district with the most grids."""
    code = session.execute(text("""
        SELECT d.code FROM areas d
         WHERE d.level = 1
         ORDER BY (SELECT count(*) FROM areas g WHERE g.path <@ d.path) DESC, d.code
         LIMIT 1""")).scalar()
    if code is None:
        raise NotFound(msg("no area has been loaded yet"), field="area")
    return code


@dataclass(frozen=True)
class Audience:
    """Who reads: a role with its scope, or the public. Decides scope and generalisation."""

    role: str
    scope: Scope

    @classmethod
    def public(cls) -> Audience:
        return cls(PUBLIC, Scope.all())

    @classmethod
    def system(cls) -> Audience:
        """The system itself (risk assessment, the command line): everything, exactly."""
        return cls("admin", Scope.all())

    @classmethod
    def of(cls, principal) -> Audience:
        """The audience of a logged-in user or token (`geo.users.Principal`)."""
        if principal is None:
            return cls.public()
        if principal.role not in ROLES:
            raise Forbidden(f"unknown role {principal.role!r}")
        return cls(principal.role, principal.scope)

    @property
    def is_public(self) -> bool:
        return self.role == PUBLIC

    @property
    def exact(self) -> bool:
        """Whether this audience sees sensitive incidents at their exact point."""
        return self.role in EXACT_ROLES

    def incidents(self, params: dict, alias: str = "i") -> str:
        """`FROM` text for the incidents this audience may read, shown as it may see them."""
        params.update(aud_exact=self.exact, aud_all=self.scope.everywhere,
                      aud_scope=list(self.scope.paths))
        return f"incidents_for(:aud_exact, :aud_all, CAST(:aud_scope AS ltree[])) {alias}"

    # -- the analytics' floors ------------------------------------------------------------------
    @property
    def min_bandwidth_m(self) -> float | None:
        return None if self.exact else GENERALISED_MIN_BANDWIDTH_M

    @property
    def min_hex_m(self) -> float | None:
        return None if self.exact else GENERALISED_MIN_HEX_M

    @property
    def whole_days(self) -> bool:
        """Whether time windows are widened to whole local days for this audience."""
        return not self.exact

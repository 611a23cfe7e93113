"""The public map's disclosure guarantee: frozen monthly releases, each cell randomly rounded to a
multiple of 5, every view a sum of them — so no published number, and no sum or difference of
published numbers (grids against hexagons, 3 against 12 months, this month's window against last
month's, cells against totals), can pin down a count of 1 to 4.

Each test runs in the second database (`lone`), where the hand-made `tiny` district is the home
jurisdiction, with a smaller district beside it that must never appear.
"""
from __future__ import annotations

import itertools
import random
from datetime import datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from layers import public
from layers.selection import TZ
from tests import town
from tests.layers.incidents import add_incident

NOW = datetime(2026, 7, 15, 12, tzinfo=TZ)          # 12 complete months: 2025-07 … 2026-06
NEXT = datetime(2026, 8, 3, 9, tzinfo=TZ)           # a month later: the windows slide by one
GRIDS = {"TZ1A1": (10.005, 10.005), "TZ1A2": (10.015, 10.005), "TZ1B1": (10.005, 10.025),
         "TZ1B2": (10.015, 10.025), "TZ2A1": (10.025, 10.005), "TZ2A2": (10.035, 10.005),
         "TZ2B1": (10.025, 10.025), "TZ2B2": (10.035, 10.025)}


def month_day(month: int, year: int = 2026, day: int = 10) -> datetime:
    return datetime(year, month, day, 11, tzinfo=TZ)


def true_count(k: int, j: int) -> int:
    """The hand-made pattern: every grid holds 1 to 4 incidents in every month (never 0 or 5)."""
    return (k + j) % 4 + 1


@pytest.fixture()
def region(lone):
    """Tiny as home with 1–4 incidents per grid and month from 2025-07 to 2026-07, plus what must
    never count: sensitive incidents, incidents outside every jurisdiction, another district."""
    town.add_tiny(lone)
    other = lone.execute(text(
        "INSERT INTO areas (code, name, level, geom) VALUES "
        "('OZ', '他区', 1, ST_Multi(ST_MakeEnvelope(10.1, 10.0, 10.12, 10.02, 4326))) RETURNING id")).scalar()
    lone.execute(text(
        "INSERT INTO areas (code, name, level, parent_id, geom) VALUES "
        "('OZ1', '他区网格', 4, :p, ST_Multi(ST_MakeEnvelope(10.1, 10.0, 10.12, 10.02, 4326)))"), {"p": other})
    truth = {}
    months = [(2025, m) for m in range(7, 13)] + [(2026, m) for m in range(1, 8)]
    for k, (year, month) in enumerate(months):
        for j, (code, (lon, lat)) in enumerate(GRIDS.items()):
            n = true_count(k, j)
            truth[(f"{year}-{month:02d}", code)] = n
            for i in range(n):
                add_incident(lone, lon + 0.0007 * i, lat + 0.0003 * i,
                             occurred_at=month_day(month, year, 3 + 2 * i))
        add_incident(lone, 10.005, 10.005, occurred_at=month_day(month, year), sensitive=True)
        add_incident(lone, 10.11, 10.01, occurred_at=month_day(month, year))            # district OZ
    for lon in (10.006, 10.5):                # flagged outside every jurisdiction, or plainly far off
        for _ in range(3):
            i = add_incident(lone, lon, 10.006, occurred_at=month_day(3))
            lone.execute(text("UPDATE incidents SET outside_jurisdiction = true, grid_id = NULL "
                              "WHERE id = :i"), {"i": i})
    lone.flush()
    return truth


def counts(fc: dict) -> dict[str, int]:
    return {f["id"]: f["properties"]["count"] for f in fc["features"]}


def views(lone, now: datetime) -> dict[tuple[str, int], dict]:
    return {(level, months): public.stats(lone, level=level, months=months, now=now)
            for level in public.LEVELS for months in public.MONTHS}


def total(fc: dict) -> int:
    return fc["meta"]["published_total"]


def assert_no_small_count(numbers) -> None:
    numbers = list(numbers)
    assert numbers
    for n in numbers:
        assert n % public.BASE == 0, n
        assert not 1 <= abs(n) <= public.BASE - 1, n


# -- the differencing attack ------------------------------------------------------------------------
def test_no_published_number_or_difference_recovers_a_count_below_5(lone, region):
    # The hand-made months hold 1–4 incidents per grid: exactly what suppression used to leak.
    assert set(region.values()) == {1, 2, 3, 4}
    now, later = views(lone, NOW), views(lone, NEXT)
    published = [n for fc in (*now.values(), *later.values()) for n in counts(fc).values()]
    totals = [total(fc) for fc in (*now.values(), *later.values())]
    assert_no_small_count(published + totals)

    differences = []
    # Grid against hexagon totals, of the same window.
    for views_at in (now, later):
        for months in public.MONTHS:
            differences.append(total(views_at["grid", months]) - total(views_at["hex", months]))
    # 12 against 3 months, per cell and in total.
    for views_at, level in itertools.product((now, later), public.LEVELS):
        long, short = counts(views_at[level, 12]), counts(views_at[level, 3])
        differences += [long[c] - short.get(c, 0) for c in long]
        differences.append(total(views_at[level, 12]) - total(views_at[level, 3]))
    # This month's window against last month's (what yesterday-minus-today used to give).
    for level, months in itertools.product(public.LEVELS, public.MONTHS):
        before, after = counts(now[level, months]), counts(later[level, months])
        differences += [after[c] - before.get(c, 0) for c in after]
        differences.append(total(later[level, months]) - total(now[level, months]))
    # Sums of cells against the totals, and any cell against any other.
    for fc in now.values():
        differences.append(sum(counts(fc).values()) - total(fc))
        differences += [a - b for a, b in itertools.combinations(counts(fc).values(), 2)]
    assert all(d % public.BASE == 0 for d in differences)
    assert not [d for d in differences if 1 <= abs(d) <= public.BASE - 1]
    # Two windows differ by exactly the month that came in and the one that left, as published.
    grid_now, grid_later = counts(now["grid", 3]), counts(later["grid", 3])
    came, left = cells_of(lone, "2026-07", "grid"), cells_of(lone, "2026-04", "grid")
    assert {c: grid_later[c] - grid_now[c] for c in grid_now} == {c: came[c] - left[c] for c in grid_now}


def cells_of(lone, month: str, level: str) -> dict[str, int]:
    """The stored published cells of the home jurisdiction's release of `month`."""
    rows = lone.execute(text("""
        SELECT c.cell, c.published FROM public_release_cells c JOIN public_releases r ON r.id = c.release_id
         WHERE r.area_code = 'TZ' AND r.month = CAST(:m AS date) AND c.level = :l"""),
        {"m": f"{month}-01", "l": level}).all()
    return dict(rows)


def test_a_published_month_never_changes(lone, region):
    first = views(lone, NOW)
    stored = lone.execute(text("SELECT id, month, seed, created_at FROM public_releases ORDER BY month")).all()
    cells = lone.execute(text("SELECT * FROM public_release_cells ORDER BY 1, 2, 3")).all()
    # Late reports for a published month, an incident moved to another grid, a sensitive flag lifted.
    for _ in range(4):
        add_incident(lone, 10.015, 10.025, occurred_at=month_day(5))
    lone.execute(text("UPDATE incidents SET sensitive = false WHERE sensitive"))
    lone.execute(text("UPDATE incidents SET grid_id = (SELECT id FROM areas WHERE code = 'TZ2B2') "
                      "WHERE id = (SELECT min(id) FROM incidents)"))
    again = views(lone, NOW)
    assert again == first
    assert lone.execute(text("SELECT id, month, seed, created_at FROM public_releases ORDER BY month")).all() == stored
    assert lone.execute(text("SELECT * FROM public_release_cells ORDER BY 1, 2, 3")).all() == cells
    # Not even by hand: the stored rows refuse updates.
    for sql in ("UPDATE public_release_cells SET published = published + 5",
                "UPDATE public_releases SET seed = 'x'"):
        with pytest.raises(DBAPIError, match="frozen"):
            with lone.begin_nested():
                lone.execute(text(sql))
    with pytest.raises(DBAPIError, match="multiple"):
        with lone.begin_nested():
            lone.execute(text("INSERT INTO public_release_cells (release_id, level, cell, published) "
                              "VALUES (:r, 'hex', 'x', 3)"), {"r": stored[0].id})


def test_repeated_requests_give_identical_numbers(lone_client, region, lone):
    bodies = []
    for _ in range(3):
        for query in ("level=grid&months=12", "level=hex&months=12", "level=grid&months=3"):
            r = lone_client.get(f"/api/public/stats?{query}")
            assert r.status_code == 200
            bodies.append(r.get_data(as_text=True))
    assert bodies[:3] == bodies[3:6] == bodies[6:]
    # Twelve releases, built once, by the first request.
    assert lone.execute(text("SELECT count(*) FROM public_releases")).scalar() == 12
    assert lone.execute(text("SELECT count(*) FROM audit_log WHERE action = 'public.release'")).scalar() == 12


def test_sensitive_incidents_change_nothing(lone, region):
    seed = b"s" * 32
    month = [public.parse_release_month("2026-03", NOW)]

    def published() -> list:
        with lone.begin_nested() as savepoint:
            public.ensure(lone, month, now=NOW, seed=seed)
            rows = lone.execute(text("SELECT level, cell, published FROM public_release_cells "
                                     "ORDER BY level, cell")).all()
            savepoint.rollback()
        return rows

    without = published()
    for lon, lat in GRIDS.values():
        for _ in range(3):
            add_incident(lone, lon, lat, occurred_at=month_day(3), sensitive=True)
    assert published() == without


def test_each_cell_is_its_true_count_rounded_with_the_stored_seed(lone, region):
    public.stats(lone, level="grid", months=12, now=NOW)
    releases = lone.execute(text("SELECT id, month, seed FROM public_releases ORDER BY month")).all()
    assert [f"{r.month:%Y-%m}" for r in releases] == [f"{y}-{m:02d}" for y, m in
                                                      [(2025, m) for m in range(7, 13)] + [(2026, m) for m in range(1, 7)]]
    for r in releases:
        month = f"{r.month:%Y-%m}"
        cells = cells_of(lone, month, "grid")
        assert set(cells) == set(GRIDS)                               # the home jurisdiction only
        for code, n in cells.items():
            assert n == public.rounded(region[month, code], public.draw(bytes(r.seed), "grid", code))
            assert n in (region[month, code] // 5 * 5, region[month, code] // 5 * 5 + 5)
        hexes = cells_of(lone, month, "hex")
        assert all(n % 5 == 0 for n in hexes.values())
    assert len({bytes(r.seed) for r in releases}) == len(releases)   # a fresh seed per month


def test_rounding_is_unbiased():
    rng = random.Random(20260715)
    seed = rng.randbytes(32)
    true = [1 + i % 4 for i in range(40_000)]
    shown = [public.rounded(n, public.draw(seed, "hex", f"cell-{i}")) for i, n in enumerate(true)]
    assert set(shown) == {0, 5}
    assert abs(sum(shown) / len(shown) - sum(true) / len(true)) < 0.06     # sd of the mean ≈ 0.011
    for r in (1, 2, 3, 4):
        up = [s == 5 for n, s in zip(true, shown) if n == r]
        assert abs(sum(up) / len(up) - r / 5) < 0.02                      # up with probability r/5
    assert [public.rounded(n, 0.999) for n in (0, 5, 10, 15)] == [0, 5, 10, 15]
    assert [public.rounded(7, u) for u in (0.0, 0.39, 0.4, 0.99)] == [10, 10, 5, 5]


def test_releases_are_unbiased_over_many_draws(lone, region):
    month = [public.parse_release_month("2025-10", NOW)]
    shown, true = [], []
    for i in range(60):
        with lone.begin_nested() as savepoint:
            public.ensure(lone, month, now=NOW, seed=bytes([i]) * 32)
            cells = cells_of(lone, "2025-10", "grid")
            savepoint.rollback()
        shown += [cells[c] for c in GRIDS]
        true += [region["2025-10", c] for c in GRIDS]
    assert abs(sum(shown) / len(shown) - sum(true) / len(true)) < 0.35    # 480 cells: sd ≈ 0.1


# -- every view is the releases' sum ------------------------------------------------------------------
def test_views_are_the_sums_of_the_stored_release_cells(lone, region):
    for (level, months), fc in views(lone, NOW).items():
        assert fc["meta"]["releases"] == [f"{d:%Y-%m}" for d in public.complete_months(months, NOW)]
        summed: dict[str, int] = {}
        for month in fc["meta"]["releases"]:
            for cell, n in cells_of(lone, month, level).items():
                summed[cell] = summed.get(cell, 0) + n
        assert counts(fc) == summed
        assert total(fc) == sum(summed.values())
        assert fc["meta"]["base"] == 5 and "random rounding to base 5" in fc["meta"]["rounding"]
        assert fc["meta"]["area"] == "TZ"
    grid = views(lone, NOW)["grid", 12]
    assert grid["meta"]["from"] == "2025-07-01" and grid["meta"]["to"] == "2026-06-30"


def test_another_jurisdiction_never_appears(lone, region):
    grid = public.stats(lone, level="grid", months=12, now=NOW)
    assert set(counts(grid)) == set(GRIDS)
    hexes = public.stats(lone, level="hex", months=12, now=NOW)
    for f in hexes["features"]:
        lons = [p[0] for p in f["geometry"]["coordinates"][0]]
        assert max(lons) < 10.06, f["id"]                 # OZ lies from 10.1°E; a hexagon is ~1.7 km wide


def test_grids_are_drawn_as_they_are_now_or_as_released_once_retired(lone, region):
    public.stats(lone, level="grid", months=12, now=NOW)
    lone.execute(text("UPDATE areas SET geom = ST_Multi(ST_MakeEnvelope(10.0, 10.0, 10.009, 10.02, 4326)) "
                      "WHERE code = 'TZ1A1'"))
    lone.execute(text("UPDATE incidents SET grid_id = NULL WHERE grid_id = (SELECT id FROM areas WHERE code = 'TZ2B2')"))
    lone.execute(text("DELETE FROM areas WHERE code = 'TZ2B2'"))
    fc = public.stats(lone, level="grid", months=12, now=NOW)
    by_id = {f["id"]: f for f in fc["features"]}
    assert max(p[0] for p in by_id["TZ1A1"]["geometry"]["coordinates"][0][0]) == pytest.approx(10.009)
    assert by_id["TZ1A1"]["properties"]["retired"] is False
    retired = by_id["TZ2B2"]
    assert retired["properties"]["retired"] is True and retired["properties"]["name"] == "测试TZ2B2"
    assert max(p[0] for p in retired["geometry"]["coordinates"][0][0]) == pytest.approx(10.04)
    assert retired["properties"]["count"] == sum(cells_of(lone, m, "grid")["TZ2B2"] for m in fc["meta"]["releases"])


# -- building releases ---------------------------------------------------------------------------------
def test_only_complete_months_are_published(lone, region):
    with pytest.raises(public.InvalidInput, match="not complete") as err:
        public.parse_release_month("2026-07", NOW)
    assert err.value.field == "month"
    public.ensure(lone, [public.parse_release_month("2026-06", NOW)], now=NOW)
    assert lone.execute(text("SELECT to_char(month, 'YYYY-MM') FROM public_releases")).scalars().all() == ["2026-06"]


def test_a_second_builder_waits_for_the_first(lone, lone_engine, region):
    months = public.complete_months(3, NOW)
    with lone_engine.connect() as other:
        # Another worker is building: this one waits for it rather than publishing a second rounding.
        other.execute(text("SELECT pg_advisory_lock(hashtext(:k))"), {"k": public.LOCK})
        try:
            with pytest.raises(DBAPIError, match="lock timeout"):
                with lone.begin_nested():
                    lone.execute(text("SET LOCAL lock_timeout = '300ms'"))
                    public.ensure(lone, months, now=NOW)
        finally:
            other.execute(text("SELECT pg_advisory_unlock(hashtext(:k))"), {"k": public.LOCK})
            other.commit()
    built = public.ensure(lone, months, now=NOW)
    assert all(r.new for r in built)

"""Generate the deterministic 郾城区 demo: areas, staff, 三零 subjects, gazetteer, roads, incidents, patrols,
households and visits.

Real: the district outline (DataV, GCJ-02, converted to WGS84) and the 10 townships and 198
villages/communities with their statistical codes and official names. Everything below the district
outline is synthetic; data/README.md lists what and how. Geometries are shapely objects in WGS84
lon/lat; metric work is done in CGCS2000 / 3-degree Gauss-Kruger CM 114E (EPSG:4547).

`generate(seed)` is pure (no database, no clock, no network) and byte-for-byte repeatable: every step
draws from its own generator seeded with (seed, step), so changing one step leaves the others alone.

One module per step, in the order `generate` runs them: `areas` (with `streets` and `tiling`),
`gazetteer`, `staff`, `entities`, `roads`, `incidents`, `patrols`, `visits` (with the village
records). Below them: `world` (the state
every step extends), `reference` (the real inputs), `names`, `coordinates` and `period`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import areas, entities, gazetteer, incidents, patrols, roads, staff, visits
from .areas import SHANGQIAO, SHANGQIAO_GRIDS
from .coordinates import METRIC_EPSG, to_metric, to_wgs84
from .entities import COMPLIANT_ENTERPRISES, COMPLIANT_VILLAGES, ENTERPRISES, SUBJECT_VILLAGES
from .incidents import INCIDENTS
from .names import load_names, short_name, township_short, zh_number
from .period import BOUNDARY_TIME, PATROL_DAY, PERIOD_END, PERIOD_START, TZ
from .reference import DISTRICT_CODE, DISTRICT_NAME, REFERENCE_DIR, read_divisions, read_outline, realdata_file
from .world import World

__all__ = [
    "DEMO_VERSION", "SEED", "Demo", "generate",
    "DISTRICT_CODE", "DISTRICT_NAME", "REFERENCE_DIR", "METRIC_EPSG",
    "TZ", "PERIOD_START", "PERIOD_END", "PATROL_DAY", "BOUNDARY_TIME",
    "SHANGQIAO", "SHANGQIAO_GRIDS", "SUBJECT_VILLAGES", "COMPLIANT_VILLAGES", "ENTERPRISES",
    "COMPLIANT_ENTERPRISES", "INCIDENTS",
    "read_outline", "read_divisions", "realdata_file", "short_name", "township_short", "zh_number",
    "to_metric", "to_wgs84",
]

DEMO_VERSION = "3"
SEED = 411103


@dataclass
class Demo:
    """The generated demo: plain lists of dicts, geometries as shapely objects in WGS84 lon/lat."""

    seed: int
    areas: list[dict] = field(default_factory=list)
    groups: list[dict] = field(default_factory=list)
    people: list[dict] = field(default_factory=list)
    staff: list[dict] = field(default_factory=list)
    departments: list[dict] = field(default_factory=list)
    entities: list[dict] = field(default_factory=list)
    places: list[dict] = field(default_factory=list)
    roads: list[dict] = field(default_factory=list)
    incidents: list[dict] = field(default_factory=list)
    hotspots: list[dict] = field(default_factory=list)
    units: list[dict] = field(default_factory=list)
    positions: list[dict] = field(default_factory=list)
    shifts: list[dict] = field(default_factory=list)
    tracks: list[dict] = field(default_factory=list)
    households: list[dict] = field(default_factory=list)
    visits: list[dict] = field(default_factory=list)
    visit_plans: list[dict] = field(default_factory=list)
    meetings: list[dict] = field(default_factory=list)
    logbook: list[dict] = field(default_factory=list)
    version: str = DEMO_VERSION

    def counts(self) -> dict[str, int]:
        """Return the number of records of every kind."""
        names = ("areas", "groups", "people", "staff", "departments", "entities", "places", "roads",
                 "incidents", "hotspots", "units", "positions", "shifts", "tracks", "households",
                 "visits", "visit_plans", "meetings", "logbook")
        return {name: len(getattr(self, name)) for name in names}


def generate(seed: int = SEED) -> Demo:
    """Generate the whole demo for `seed`; the same seed always gives the same data."""
    world = World(seed, load_names())
    areas.build(world)
    gazetteer.build(world)
    gazetteer.mark_dedicated_grids(world)
    staff.build(world)
    entities.build(world)
    roads.build(world)
    incidents.build(world)
    patrols.build(world)
    visits.build(world)
    return _demo(world)


def _demo(world: World) -> Demo:
    """Hand over what the steps built, areas parents first."""
    ordered = sorted(world.areas.values(), key=lambda a: (a.level, a.code))
    return Demo(seed=world.seed, areas=[a.record() for a in ordered],
                groups=world.groups, people=world.people, staff=world.staff,
                departments=world.departments, entities=world.entities, places=world.places,
                roads=world.roads, incidents=world.incidents, hotspots=world.hotspots,
                units=world.units, positions=world.positions, shifts=world.shifts,
                tracks=world.tracks, households=world.households, visits=world.visits,
                visit_plans=world.visit_plans, meetings=world.meetings, logbook=world.logbook)

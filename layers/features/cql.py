"""CQL2 text filters (OGC API – Features Part 3) parsed by pygeofilter and turned into SQL on a
collection's source `s`, every literal a bound parameter and every property one of the
collection's queryables, so nothing from the filter text ever becomes SQL text.

Supported: comparisons (=, <>, <, <=, >, >=), AND, OR, NOT, IS [NOT] NULL, [NOT] LIKE,
[NOT] BETWEEN, [NOT] IN, and S_INTERSECTS of the geometry with a geometry literal or BBOX(...) in
`filter-crs`. Anything else is InvalidInput naming `filter`.
"""
from __future__ import annotations

import json
from datetime import date, datetime

from pygeofilter import ast, values
from pygeofilter.parsers.cql2_text import parse as parse_text

from geo.errors import InvalidInput

from ..selection import TZ
from .collections import Collection, Property
from .crs import Crs

GEOMETRY = "geometry"
COMPARISONS = {ast.Equal: "=", ast.NotEqual: "<>", ast.LessThan: "<", ast.LessEqual: "<=",
               ast.GreaterThan: ">", ast.GreaterEqual: ">="}
MAX_LENGTH = 20_000


def _bad(message: str) -> InvalidInput:
    return InvalidInput("filter", f"filter: {message}")


class _Translator:
    """Walk one parsed filter, collecting bound parameters."""

    def __init__(self, collection: Collection, params: dict, crs: Crs):
        self.collection, self.params, self.crs = collection, params, crs

    def bind(self, value, sql_type: str) -> str:
        name = f"flt{len([k for k in self.params if k.startswith('flt')])}"
        self.params[name] = value
        return f"CAST(:{name} AS {sql_type})"

    def prop(self, node) -> Property:
        if not isinstance(node, ast.Attribute):
            raise _bad(f"expected a property name, got {node!r}")
        found = self.collection.prop(node.name)
        if found is None or not found.queryable:
            names = ", ".join(p.name for p in self.collection.queryables)
            raise _bad(f"unknown property {node.name!r} in collection {self.collection.id}; "
                       f"queryables: {names}, {GEOMETRY}")
        return found

    def literal(self, value, prop: Property):
        """Check a literal against the property's type and convert it for binding."""
        kind = prop.type
        ok = {"string": isinstance(value, str),
              "integer": isinstance(value, int) and not isinstance(value, bool),
              "number": isinstance(value, (int, float)) and not isinstance(value, bool),
              "boolean": isinstance(value, bool)}
        if kind == "boolean" and value in (0, 1) and not isinstance(value, bool):
            return bool(value)     # GDAL writes booleans as 0 and 1
        if kind in ok:
            if not ok[kind]:
                raise _bad(f"{prop.name} is {'an' if kind[0] in 'ai' else 'a'} {kind}; got {value!r}")
            return value
        if isinstance(value, str):    # a quoted time, as clients often send one
            try:
                value = (date.fromisoformat(value) if len(value) == 10 else
                         datetime.fromisoformat(value.replace("Z", "+00:00")))
            except ValueError:
                raise _bad(f"{prop.name} is a {kind}: compare it with TIMESTAMP('…') or DATE('…'); "
                           f"got {value!r}") from None
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=TZ)
        if isinstance(value, date):
            return value
        raise _bad(f"{prop.name} is a {kind}; got {value!r}")

    def column(self, prop: Property) -> str:
        return f's."{prop.name}"'

    def node(self, n) -> str:
        if isinstance(n, ast.And):
            return f"({self.node(n.lhs)} AND {self.node(n.rhs)})"
        if isinstance(n, ast.Or):
            return f"({self.node(n.lhs)} OR {self.node(n.rhs)})"
        if isinstance(n, ast.Not):
            return f"(NOT {self.node(n.sub_node)})"
        if isinstance(n, ast.Include):
            return "false" if n.not_ else "true"
        if type(n) in COMPARISONS:
            return self.comparison(n, COMPARISONS[type(n)])
        if isinstance(n, ast.IsNull):
            return f"({self.column(self.prop(n.lhs))} IS {'NOT ' if n.not_ else ''}NULL)"
        if isinstance(n, ast.Like):
            prop = self.prop(n.lhs)
            if prop.type != "string":
                raise _bad(f"LIKE needs a text property; {prop.name} is a {prop.type}")
            # CQL2's wildcards (% and _, escaped by a backslash) are PostgreSQL's.
            return (f"({self.column(prop)} {'NOT ' if n.not_ else ''}LIKE "
                    f"{self.bind(self.literal(n.pattern, prop), 'text')})")
        if isinstance(n, ast.Between):
            prop = self.prop(n.lhs)
            low, high = (self.bind(self.literal(v, prop), prop.sql_type) for v in (n.low, n.high))
            return f"({self.column(prop)} {'NOT ' if n.not_ else ''}BETWEEN {low} AND {high})"
        if isinstance(n, ast.In):
            prop = self.prop(n.lhs)
            items = [self.literal(v, prop) for v in n.sub_nodes]
            test = f"{self.column(prop)} = ANY({self.bind(items, prop.sql_type + '[]')})"
            return f"(NOT ({test}))" if n.not_ else f"({test})"
        if isinstance(n, ast.GeometryIntersects):
            return self.intersects(n)
        raise _bad(f"{type(n).__name__} is not supported; use comparisons, AND, OR, NOT, IS NULL, "
                   "LIKE, BETWEEN, IN or S_INTERSECTS")

    def comparison(self, n, op: str) -> str:
        lhs, rhs = n.lhs, n.rhs
        if not isinstance(lhs, ast.Attribute) and isinstance(rhs, ast.Attribute):
            lhs, rhs = rhs, lhs
            op = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)
        prop = self.prop(lhs)
        if isinstance(rhs, ast.Attribute):
            other = self.prop(rhs)
            if SQL_FAMILY.get(other.type) != SQL_FAMILY.get(prop.type):
                raise _bad(f"cannot compare {prop.name} ({prop.type}) with {other.name} ({other.type})")
            return f"({self.column(prop)} {op} {self.column(other)})"
        if isinstance(rhs, ast.Node) or rhs is None:
            raise _bad(f"compare {prop.name} with a literal value; got {rhs!r}")
        return f"({self.column(prop)} {op} {self.bind(self.literal(rhs, prop), prop.sql_type)})"

    def intersects(self, n) -> str:
        lhs, rhs = n.lhs, n.rhs
        if not isinstance(lhs, ast.Attribute):
            lhs, rhs = rhs, lhs
        if not isinstance(lhs, ast.Attribute) or lhs.name != GEOMETRY:
            raise _bad(f"S_INTERSECTS compares the property {GEOMETRY!r} with a geometry literal")
        if isinstance(rhs, ast.Function) and rhs.name.lower() == "bbox":
            geometry = _bbox_polygon(rhs.arguments)
        elif isinstance(rhs, (values.Geometry, values.Envelope)):
            geometry = rhs.geometry
        else:
            raise _bad(f"S_INTERSECTS needs a geometry literal (POINT, POLYGON, BBOX …); got {rhs!r}")
        literal = self.crs.to_storage(f"ST_GeomFromGeoJSON({self.bind(json.dumps(geometry), 'text')})")
        return f"ST_Intersects(s.geom, {literal})"


SQL_FAMILY = {"string": "text", "integer": "number", "number": "number", "boolean": "boolean",
              "date-time": "time", "date": "time"}


def _bbox_polygon(args) -> dict:
    numbers = list(args)
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    if len(numbers) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
        raise _bad(f"BBOX takes four numbers (lower corner, then upper corner); got {numbers!r}")
    a1, a2, b1, b2 = (float(v) for v in numbers)
    return {"type": "Polygon", "coordinates": [[[a1, a2], [b1, a2], [b1, b2], [a1, b2], [a1, a2]]]}


def to_sql(text_filter: str, collection: Collection, params: dict, crs: Crs) -> str:
    """SQL (a condition on `s`) for a CQL2 text filter, its literals added to `params`."""
    if len(text_filter) > MAX_LENGTH:
        raise _bad(f"at most {MAX_LENGTH} characters")
    try:
        tree = parse_text(text_filter)
    except Exception as exc:   # lark raises many kinds; each means the text is not CQL2
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _bad(f"not valid CQL2 text ({first}); e.g. category = 'dispute' AND severity >= 3") from None
    return _Translator(collection, params, crs).node(tree)

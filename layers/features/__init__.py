"""OGC API – Features over the platform's layers: the collections (`COLLECTIONS`), the parsing of
an items request, CQL2 filters, the CRSs offered, and the reading of pages, features and extents.
The web blueprint (web/ogc.py) only negotiates formats, checks roles and writes links.
"""
from __future__ import annotations

from .collections import COLLECTIONS, Collection, Property
from .crs import CRS84, SYSTEMS, Crs
from .items import extent, item, items
from .query import LIMIT_DEFAULT, LIMIT_MAX, Query, parse

__all__ = ["COLLECTIONS", "CRS84", "LIMIT_DEFAULT", "LIMIT_MAX", "SYSTEMS", "Collection", "Crs",
           "Property", "Query", "extent", "item", "items", "parse"]

"""Bounds on the work one request may ask for: vertices per geometry, features per import and bytes
per change set. Each is a setting (ANWANG_MAX_VERTICES and the like); exceeding one is refused
before any work with an error naming the limit, the field and what came.
"""
from __future__ import annotations

from collections.abc import Sequence

from geo.errors import TooComplex, TooLarge
from geo.messages import msg


def check_bytes(size: int | None, maximum: int, field: str, limit: str = "ANWANG_MAX_CHANGE_BYTES") -> None:
    """Refuse a body of more than `maximum` bytes."""
    if size is not None and size > maximum:
        raise TooLarge(field, msg("the request has {size:,} bytes; at most {maximum:,} are accepted ({limit})",
                                  size=size, maximum=maximum, limit=limit),
                       limit=limit, maximum=maximum, got=size)


def check_features(count: int, maximum: int, field: str = "file",
                   limit: str = "ANWANG_MAX_IMPORT_FEATURES") -> None:
    """Refuse a file of more than `maximum` features."""
    if count > maximum:
        raise TooLarge(field, msg("the file has {count:,} features; at most {maximum:,} are accepted in one "
                                  "import ({limit}): split it", count=count, maximum=maximum, limit=limit),
                       limit=limit, maximum=maximum, got=count)


def geojson_vertices(obj, stop: int | None = None) -> int:
    """The positions in a GeoJSON geometry, Feature or FeatureCollection; counting ends past `stop`."""
    count, todo = 0, [obj]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            for key in ("coordinates", "geometry", "geometries", "features"):
                if key in item:
                    todo.append(item[key])
        elif isinstance(item, list):
            if item and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in item):
                count += 1           # a position: [lon, lat] (or with z)
                if stop is not None and count > stop:
                    return count
            else:
                todo.extend(item)
    return count


def check_geojson(geometry, maximum: int, field: str = "geometry",
                  limit: str = "ANWANG_MAX_VERTICES") -> None:
    """Refuse a GeoJSON geometry of more than `maximum` vertices (counted without parsing it)."""
    count = geojson_vertices(geometry, stop=maximum)
    if count > maximum:
        raise TooComplex(field, msg("the geometry has more than {maximum:,} vertices ({limit}); simplify it",
                                    maximum=maximum, limit=limit),
                         limit=limit, maximum=maximum, got=count)


def check_wkbs(wkbs: Sequence[bytes | None], maximum: int, field: str = "file",
               limit: str = "ANWANG_MAX_VERTICES") -> None:
    """Refuse a file whose largest geometry (as WKB) has more than `maximum` vertices."""
    import numpy as np
    import shapely

    if not wkbs:
        return
    counts = shapely.get_num_coordinates(shapely.from_wkb(np.asarray(wkbs, dtype=object), on_invalid="ignore"))
    worst = int(np.argmax(counts))
    if counts[worst] > maximum:
        raise TooComplex(field, msg("feature {feature} has {count:,} vertices; at most {maximum:,} are "
                                    "accepted per geometry ({limit}): simplify it", feature=worst + 1,
                                    count=int(counts[worst]), maximum=maximum, limit=limit),
                         limit=limit, maximum=maximum, got=int(counts[worst]))

"""A small Mapbox Vector Tile 2.1 reader for the tests: protobuf wire format, the layers, their
features' properties and geometries, back to longitude and latitude."""
from __future__ import annotations

import gzip
import math
import struct
from dataclasses import dataclass, field


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes):
    """(field number, wire type, value) of a protobuf message; length-delimited values as bytes."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        yield number, wire, value


def _packed(buf: bytes) -> list[int]:
    out, i = [], 0
    while i < len(buf):
        v, i = _varint(buf, i)
        out.append(v)
    return out


def _zigzag(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


def _value(buf: bytes):
    for number, _, v in _fields(buf):
        if number == 1:
            return v.decode()
        if number == 2:
            return struct.unpack("<f", v)[0]
        if number == 3:
            return struct.unpack("<d", v)[0]
        if number in (4, 5):
            return v if number == 5 or v < 1 << 63 else v - (1 << 64)
        if number == 6:
            return _zigzag(v)
        if number == 7:
            return bool(v)
    return None


@dataclass
class Feature:
    type: str                       # Point, LineString, Polygon
    properties: dict
    rings: list                     # lists of (x, y) in tile coordinates, one per part
    id: int | None = None


@dataclass
class Layer:
    name: str
    extent: int = 4096
    features: list = field(default_factory=list)


TYPES = {1: "Point", 2: "LineString", 3: "Polygon"}


def _geometry(commands: list[int]) -> list:
    parts, cur, x, y, i = [], None, 0, 0, 0
    while i < len(commands):
        cmd, count = commands[i] & 7, commands[i] >> 3
        i += 1
        if cmd == 7:                       # ClosePath
            if cur:
                cur.append(cur[0])
            continue
        for _ in range(count):
            x += _zigzag(commands[i])
            y += _zigzag(commands[i + 1])
            i += 2
            if cmd == 1:                   # MoveTo starts a part
                cur = [(x, y)]
                parts.append(cur)
            else:
                cur.append((x, y))
    return parts


def _feature(raw: bytes, keys: list[str], values: list) -> Feature:
    fid, tags, kind, geometry = None, [], 0, []
    for n, _, v in _fields(raw):
        if n == 1:
            fid = v
        elif n == 2:
            tags = _packed(v)
        elif n == 3:
            kind = v
        elif n == 4:
            geometry = _packed(v)
    props = {keys[tags[k]]: values[tags[k + 1]] for k in range(0, len(tags), 2)}
    return Feature(TYPES.get(kind, "Unknown"), props, _geometry(geometry), fid)


def decode(body: bytes) -> dict[str, Layer]:
    """Every layer of a tile (gzip-compressed or not) by name."""
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    layers = {}
    for number, _, raw in _fields(body):
        if number != 3:
            continue
        layer, keys, values, features = Layer(""), [], [], []
        for n, _, v in _fields(raw):
            if n == 1:
                layer.name = v.decode()
            elif n == 2:
                features.append(v)
            elif n == 3:
                keys.append(v.decode())
            elif n == 4:
                values.append(_value(v))
            elif n == 5:
                layer.extent = v
        layer.features.extend(_feature(raw, keys, values) for raw in features)
        layers[layer.name] = layer
    return layers


def lonlat(z: int, x: int, y: int, px: float, py: float, extent: int = 4096) -> tuple[float, float]:
    """A tile coordinate of tile z/x/y as longitude, latitude."""
    n = 1 << z
    lon = (x + px / extent) / n * 360.0 - 180.0
    lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (y + py / extent) / n))))
    return lon, lat


def tile_of(z: int, lon: float, lat: float) -> tuple[int, int]:
    """The column and row of the tile at zoom z holding a point."""
    n = 1 << z
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def points(tile: dict[str, Layer], z: int, x: int, y: int) -> list[tuple[float, float]]:
    """Every vertex of every feature of a decoded tile, as longitude, latitude."""
    return [lonlat(z, x, y, px, py, layer.extent) for layer in tile.values() for f in layer.features
            for part in f.rings for px, py in part]

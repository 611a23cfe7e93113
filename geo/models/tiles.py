"""Vector tiles: the tile cache the triggers of 0014 expire, and the basemap's imported features.
"""
from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    SmallInteger,
    Text,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from geo.models.base import SRID, Base


class TileCache(Base):
    """One built vector tile for one audience class, gzip-compressed, until an edit or the clock expires it."""

    __tablename__ = "tile_cache"
    __table_args__ = (
        PrimaryKeyConstraint("layer", "z", "x", "y", "audience"),
        CheckConstraint("x >= 0 AND y >= 0 AND x < (1 << z) AND y < (1 << z)", name="tile_cache_check"),
        # Edits find the tiles they meet through the envelope (the tile with its buffer).
        Index("tile_cache_envelope_idx", "envelope", postgresql_using="gist"),
    )
    layer: Mapped[str] = mapped_column(Text)
    z: Mapped[int] = mapped_column(SmallInteger, CheckConstraint("z BETWEEN 0 AND 24", name="tile_cache_z_check"))
    x: Mapped[int] = mapped_column(Integer)
    y: Mapped[int] = mapped_column(Integer)
    audience: Mapped[str] = mapped_column(Text)
    tile: Mapped[bytes] = mapped_column(LargeBinary)
    etag: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    envelope = mapped_column(Geometry("POLYGON", srid=SRID, spatial_index=False), nullable=False)


class BasemapFeature(Base):
    """A road, railway, water body or waterway, land use, building or named place of the basemap."""

    __tablename__ = "basemap_features"
    __table_args__ = (
        Index("basemap_features_geom_idx", "geom", postgresql_using="gist"),
        Index("basemap_features_source_idx", "source"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    layer: Mapped[str] = mapped_column(Text, CheckConstraint(
        "layer IN ('roads', 'railways', 'water', 'landuse', 'buildings', 'places')",
        name="basemap_features_layer_check"))
    # The class within the layer (primary, residential, river …) a style draws by.
    class_: Mapped[str] = mapped_column("class", Text)
    name: Mapped[str | None] = mapped_column(Text)
    minzoom: Mapped[int] = mapped_column(SmallInteger, CheckConstraint(
        "minzoom BETWEEN 0 AND 24", name="basemap_features_minzoom_check"))
    osm_id: Mapped[int | None] = mapped_column(BigInteger)
    geom = mapped_column(Geometry("GEOMETRY", srid=SRID, spatial_index=False), nullable=False)

"""What a boundary change does, before it is written: the operations, the new areas a plan
creates, and the result a preview or a commit answers with.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from geo.messages import msg

OPS = ("transfer", "split", "merge", "reshape", "partition", "move")
# Each kind of change by name, where a message says it (in the reader's language).
KIND_NAMES = {"transfer": msg("Transfer"), "split": msg("Split"), "merge": msg("Merge"),
              "reshape": msg("Reshape"), "partition": msg("Partition"), "move": msg("Move"),
              "revert": msg("Revert"), "import": msg("Import")}



LOCK_MINUTES = 10


# -- plans -----------------------------------------------------------------------------------
@dataclass
class NewArea:
    """An area a change creates (or, in a revert, brings back with its old id)."""

    key: str
    code: str
    name: str
    level: int
    parent_id: int | None
    geom: bytes
    households: int | None = None
    population: int | None = None
    kind: str | None = None
    urban: bool | None = None
    group_id: int | None = None
    attrs: dict | None = None
    id: int | None = None
    restore_version: int | None = None  # a revert copies this version's geometry (same WKB)


@dataclass
class Plan:
    """What a change does: areas updated in place, created and retired (with their successor)."""

    op: str
    updates: dict[int, dict] = field(default_factory=dict)
    creates: list[NewArea] = field(default_factory=list)
    retires: dict[int, int | str | None] = field(default_factory=dict)  # id → successor id, create key or none
    notes: list[str] = field(default_factory=list)
    parents: set[int] = field(default_factory=set)  # whose children must still partition them
    restore_refs: list = field(default_factory=list)  # a revert puts back what the change carried


@dataclass
class Result:
    """A preview or a committed change: one row per area it touches, and what to watch out for."""

    op: str
    preview: bool
    rows: list[dict]
    balance: dict
    problems: list[dict]
    notes: list[str]
    change_id: int | None = None
    reverts_id: int | None = None

    def as_dict(self) -> dict:
        return {"op": self.op, "preview": self.preview, "change_id": self.change_id,
                "reverts_id": self.reverts_id, "rows": self.rows, "balance": self.balance,
                "problems": self.problems, "notes": self.notes}

"""Fixtures of the web tests."""
from __future__ import annotations

import pytest

from geo.patrol import units
from tests.web.patrol_common import ACTOR


@pytest.fixture()
def device(session, tiny):
    """A unit in grid TZ1A1 with device id 8723451 (Traccar Client's random 8-digit id)."""
    uid, token = units.add_unit(session, ACTOR, "巡A-1", "car", "8723451", "TZ1A1", "on_duty")
    session.flush()
    return {"id": uid, "token": token, "callsign": "巡A-1", "device_id": "8723451"}

"""Fixtures of the core tests."""
from __future__ import annotations

import pytest

from tests import town


@pytest.fixture()
def places(session, tiny):
    """The tiny region with its hand-made gazetteer (tests/town.py)."""
    return town.build(session)

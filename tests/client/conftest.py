"""Fixtures for the DPG client tests."""

from __future__ import annotations

import pytest

from tests.client.helpers import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()

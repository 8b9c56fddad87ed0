"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest

from core.profiles import ProfileSet
from tests.unit.shipped import shipped_profiles


@pytest.fixture
def shipped() -> ProfileSet:
    """The shipped profiles (``profiles/*.yaml``), validated and normalised."""
    return shipped_profiles()

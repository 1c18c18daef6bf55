"""Fixtures for the breach tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def members() -> list[str]:
    return [f"member-{i}" for i in range(3000)]

"""Shared fixtures: the real Super-NI sample (tiny models are built where used: tests/adapters/helpers.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SUPERNI_SAMPLE = SHARED / "data" / "superni-sample" / "tasks"


@pytest.fixture
def superni_sample_dir():
    if not SUPERNI_SAMPLE.is_dir():
        pytest.skip(f"real Super-NI sample not present at {SUPERNI_SAMPLE} (only CI and developers have ../shared)")
    return SUPERNI_SAMPLE

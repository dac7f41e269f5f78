"""Shared fixtures: tiny models built from configs (no downloads) and the real Super-NI sample."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchmoe.models.tiny import build_tiny, byte_tokenizer

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SUPERNI_SAMPLE = SHARED / "data" / "superni-sample" / "tasks"


@pytest.fixture
def tiny_t5():
    return build_tiny("t5")


@pytest.fixture
def tiny_llama():
    return build_tiny("llama")


@pytest.fixture
def tiny_gpt2():
    return build_tiny("gpt2")


@pytest.fixture(params=["t5", "llama", "gpt2"])
def tiny_any(request):
    return request.param, build_tiny(request.param)


@pytest.fixture
def tokenizer():
    return byte_tokenizer()


@pytest.fixture
def superni_sample_dir():
    if not SUPERNI_SAMPLE.is_dir():
        pytest.skip(f"real Super-NI sample not present at {SUPERNI_SAMPLE} (only CI and developers have ../shared)")
    return SUPERNI_SAMPLE

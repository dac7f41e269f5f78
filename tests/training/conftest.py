"""A small built-in suite (4 tasks, 8 train / 2 eval examples each) shared by the engine tests."""
from __future__ import annotations

import json

import pytest

from ..suites import sampled_builtin_suite

TARGETS = {"t5": ["q", "k", "v"], "llama": ["q_proj", "k_proj", "v_proj"]}
FAST = {"lr": 1e-2, "batch_size": 4, "max_steps": 6, "max_source_length": 96, "max_target_length": 12,
        "save_every": 2, "log_every": 1}


def tiny_spec(arch: str) -> str:
    return json.dumps({"source": "tiny", "arch": arch})


@pytest.fixture(scope="session")
def suite(tmp_path_factory):
    return sampled_builtin_suite(tmp_path_factory.mktemp("suite"), n_instances=12, max_tasks=4, n_train=8)



"""Skill recovery on known allocations, the study statistics, and the router diagnostics on a tiny model."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from orchmoe.metrics.skill_recovery import skill_recovery
from orchmoe.report.study import mean_sd, paired_bootstrap_ci
from orchmoe.training.diagnostics import router_diagnostics, routing_warnings

SKILLS = {"t_ab": ["a", "b"], "t_ba": ["b", "a"], "t_ac": ["a", "c"], "t_cd": ["c", "d"], "t_bd": ["b", "d"],
          "t_dc": ["d", "c"]}
TASKS = list(SKILLS)


def _indicator(tasks):
    names = sorted({s for t in tasks for s in SKILLS[t]})
    return np.array([[1.0 if s in SKILLS[t] else 0.0 for s in names] for t in tasks])


def test_routing_that_follows_the_skill_sets_is_recovered():
    rec = skill_recovery(TASKS, _indicator(TASKS) * 0.01 + 0.25, SKILLS)  # near-uniform but ordered: still found
    assert rec["spearman"] > 0.9 and rec["n_clusters"] == 4 and rec["n_tasks"] == 6
    assert rec["ari"] == pytest.approx(1.0)


def test_routing_unrelated_to_the_skills_is_not_recovered():
    rng = np.random.default_rng(0)
    rhos = [skill_recovery(TASKS, rng.random((6, 4)), SKILLS)["spearman"] for _ in range(50)]
    assert abs(np.mean(rhos)) < 0.15
    anti = skill_recovery(TASKS, 1 - _indicator(TASKS), SKILLS)
    assert anti["spearman"] > 0.9  # a sign flip of every vector keeps distances: invariant, as it should be
    assert np.isnan(skill_recovery(TASKS, np.ones((6, 4)), SKILLS)["spearman"])  # identical routing: undefined


def test_paired_bootstrap_ci_and_one_seed_formatting():
    m, lo, hi = paired_bootstrap_ci([3.0, 4.0, 5.0], [1.0, 2.0, 3.0])
    assert (m, lo, hi) == (2.0, 2.0, 2.0)
    rng = np.random.default_rng(1)
    a = rng.normal(1.0, 1.0, 400)
    m, lo, hi = paired_bootstrap_ci(a, np.zeros(400), n_boot=2000)
    assert lo < m < hi and lo < 1.0 < hi and hi - lo < 0.5
    assert mean_sd([65.5]) == "65.50 ± —"
    assert mean_sd([1.0, 3.0]) == "2.00 ± 1.41"


@pytest.mark.parametrize("reading", ["affine", "softmax"])
def test_router_diagnostics_per_block_and_the_uniform_warning(reading):
    from orchmoe.adapters import attach_adapters
    from orchmoe.models.tiny import build_tiny

    torch.manual_seed(0)
    model = attach_adapters(build_tiny("t5"), {"method": "orchmoe", "target_modules": ["q", "k", "v"], "rank": 2,
                                               "n_tasks": 3, "orchmoe_task_router": reading})
    with torch.no_grad():  # B = 0 at init gives the routers no gradient at all: start from a trained-looking B
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.3)
    ids = torch.randint(3, 200, (4, 9))
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids[:, :5].clone())
    out.loss.backward()
    rows = router_diagnostics(model, step=1)
    assert len(rows) == len(model.block_routers)  # one row per transformer block
    for r in rows:
        assert 0.99 < r["alloc_entropy"] <= 1.0 and r["alloc_dist_uniform"] < 1e-2  # U(-1e-3, 1e-3) init: uniform
        assert 0 <= r["weight_entropy"] <= 1 and 0 <= r["task_entropy"] <= 1
        loads = [r[f"load_{s}"] for s in range(4)]
        if reading == "softmax":  # alpha is a convex combination
            assert abs(sum(loads) - 1) < 1e-4
        else:  # eq. 4 as written: alpha = w(X) W_hat has any sum, the same for every skill while W_hat is uniform
            assert abs(sum(loads) - 1) > 1e-2 and max(loads) - min(loads) < 1e-2 * max(map(abs, loads))
    assert any(r["grad_norm"] > 0 for r in rows)
    warns = routing_warnings("orchmoe", rows)
    assert any("near-uniform" in w for w in warns)  # untrained: the warning the report shows
    spread = [dict(r, weight_dist_uniform=0.3, weight_spread=0.2) for r in rows]
    assert routing_warnings("orchmoe", spread) == []

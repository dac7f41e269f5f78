"""The output path grammar (orchmoe.paths): what the workflow builds, the report parses back."""
from __future__ import annotations

import pytest

from orchmoe.paths import checkpoint_dir, eval_dir, parse_eval_dir, parse_run, run_name


@pytest.mark.parametrize("entry,point,domain", [("lora", {}, None), ("orchmoe", {"rank": 4, "n_abstract_tasks": 20}, None),
                                                ("lora_domain", {}, "sort"), ("moa", {"rank": 2}, "x")])
def test_run_names_round_trip(entry, point, domain):
    name = run_name(entry, point, domain)
    assert parse_run(name) == (entry, "-".join(f"{k}{v}" for k, v in sorted(point.items())), domain)


def test_eval_dir_round_trip():
    d = eval_dir("demo", "builtin", "tiny-t5", "orchmoe-rank4@sort", 13, "unseen", results="/x/results")
    assert d == "/x/results/eval/demo/builtin/tiny-t5/orchmoe-rank4@sort/seed13/unseen"
    assert parse_eval_dir(d) == {"results": "/x/results", "experiment": "demo", "suite": "builtin", "base": "tiny-t5",
                                 "run": "orchmoe-rank4@sort", "seed": 13, "split": "unseen"}
    assert checkpoint_dir("demo", "builtin", "tiny-t5", "lora", 0) == "results/checkpoints/demo/builtin/tiny-t5/lora/seed0"
    with pytest.raises(ValueError, match="not an evaluation folder"):
        parse_eval_dir("/x/results/eval/demo/builtin/tiny-t5/lora/eval")

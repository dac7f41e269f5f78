"""Few-shot adaptation (`orchmoe adapt`): only routing trains, skills stay bitwise equal, held-out tasks get ids."""
from __future__ import annotations

import json

import pytest
import torch

from orchmoe.cli import main
from orchmoe.data.builtin import write_builtin_suite
from orchmoe.data.superni import sample_superni
from orchmoe.io import read_json
from orchmoe.models.loading import load_base
from orchmoe.training.adapt import adapt, is_skill_param
from orchmoe.training.cli import resolve_adapter_config
from orchmoe.training.trainer import train, write_outputs

from .conftest import FAST, TARGETS, tiny_spec


@pytest.fixture(scope="module")
def heldout_suite(tmp_path_factory):
    root = tmp_path_factory.mktemp("heldout")
    meta = write_builtin_suite(root / "raw", n_instances=12, n_primitive_instances=4, max_tasks=5)
    sample_superni(root / "raw" / "tasks", root / "s", n_tasks=3, n_train=8, n_eval=2, n_unseen=2,
                   n_unseen_eval=2, n_unseen_train=4, task_domains=meta["domains"])
    return root / "s"


def _trained(tmp_path, suite, method):
    base, tok = load_base(json.loads(tiny_spec("t5")))
    raw = {"method": method, "rank": 2, "target_modules": TARGETS["t5"], **({} if method == "lora" else {"n_skills": 2})}
    cfg = resolve_adapter_config(raw,
                                 read_json(suite / "manifest.json"))
    from orchmoe.training.trainer import TrainConfig
    model = train(base, tok, suite, cfg, TrainConfig.from_dict({**FAST, "max_steps": 2}), 0, tmp_path / "w")
    write_outputs(tmp_path / "ckpt", model)
    return tmp_path / "ckpt"


@pytest.mark.parametrize("method", ["poly", "orchmoe"])
def test_adapt_trains_only_routing(tmp_path, heldout_suite, method):
    ckpt = _trained(tmp_path, heldout_suite, method)
    from safetensors.torch import load_file
    saved = load_file(str(ckpt / "orchmoe_adapter.safetensors"))
    base, tok = load_base(json.loads(tiny_spec("t5")))
    model, first, rows = adapt(base, tok, heldout_suite, ckpt, lr=0.5, steps=3, batch_size=4, seed=0,
                               max_source_length=96, max_target_length=12)
    now = {n: p.detach() for n, p in model.named_parameters()}
    skills = [n for n in saved if is_skill_param(n)]
    assert skills and all(torch.equal(saved[n], now[n]) for n in skills)  # skills bitwise equal
    routers = [n for n in saved if not is_skill_param(n)]
    if method == "poly":  # seen rows untouched, the two held-out rows appended and trained
        assert first == 3 and model.cfg.n_tasks == 5
        for n in routers:
            assert torch.equal(now[n][:3], saved[n]) and now[n].shape[0] == 5
        assert any(not torch.allclose(now[n][3:], saved[n].mean(0).expand(2, -1)) for n in routers)
    else:  # no task ids: the routing parameters themselves train
        assert first is None and any(not torch.equal(saved[n], now[n]) for n in routers)
    assert len(rows) == 3


def test_adapt_cli_writes_fewshot_eval(tmp_path, heldout_suite):
    ckpt = _trained(tmp_path, heldout_suite, "lora")  # no routing: nothing trains, the checkpoint is evaluated as is
    out = tmp_path / "fewshot"
    main(["adapt", "--base", tiny_spec("t5"), "--checkpoint", str(ckpt), "--data", str(heldout_suite), "--out",
          str(out), "--steps", "2", "--max-source-length", "96", "--max-target-length", "12"])
    metrics = read_json(out / "metrics.json")
    assert set(metrics["per_task"]) == set(read_json(heldout_suite / "manifest.json")["unseen_tasks"])
    assert (out / "adapter" / "orchmoe_adapter.json").is_file()
    recorded = read_json(out / "run.json")["outputs"]  # each file `orchmoe trace --verify` checks
    assert set(recorded) == {"adapter", "adapt_log.csv", "metrics.json", "predictions.jsonl"}
    assert set(recorded["adapter"]["files"]) == {"orchmoe_adapter.json", "orchmoe_adapter.safetensors"}


def test_unseen_train_is_disjoint_from_unseen_eval(heldout_suite):
    from orchmoe.io import read_jsonl
    few, ev = read_jsonl(heldout_suite / "unseen_train.jsonl"), read_jsonl(heldout_suite / "unseen.jsonl")
    assert len(few) == 8 and not {r["id"] for r in few} & {r["id"] for r in ev}


def test_oracle_allocation_is_the_skill_map(tmp_path, heldout_suite):
    """The oracle routes every task (held-out ones by name) uniformly over its ground-truth skills; they train."""
    skills_file = heldout_suite.parent / "raw" / "skills.json"
    meta, manifest = read_json(skills_file), read_json(heldout_suite / "manifest.json")
    ckpt = tmp_path / "oracle"
    main(["train", "--base", tiny_spec("t5"), "--data", str(heldout_suite), "--seed", "0", "--out", str(ckpt),
          "--work", str(tmp_path / "w"), "--oracle-skills", str(skills_file),
          "--adapter-config", json.dumps({"method": "poly", "rank": 2, "target_modules": TARGETS["t5"]}),
          "--train-config", json.dumps({**FAST, "max_steps": 2})])
    from orchmoe.adapters import load_adapters
    model = load_adapters(load_base(json.loads(tiny_spec("t5")))[0], ckpt)
    names = manifest["tasks"] + manifest["unseen_tasks"]
    assert model.cfg.task_names == names and model.cfg.n_skills == len(meta["primitives"])
    want = torch.tensor([[0.5 if p in meta["skills"][t] else 0.0 for p in meta["primitives"]] for t in names])
    for alloc in model.routing_report()["allocation"].values():
        assert torch.equal(torch.as_tensor(alloc), want)
    assert not any(p.requires_grad for n, p in model.named_parameters() if n.endswith("module_logits"))
    lora_b = [p for n, p in model.named_parameters() if n.endswith("lora_B")]
    assert any(p.abs().sum() > 0 for p in lora_b)  # skills trained (B starts at 0)
    out = tmp_path / "fewshot"  # nothing to adapt: the held-out rows are given
    main(["adapt", "--base", tiny_spec("t5"), "--checkpoint", str(ckpt), "--data", str(heldout_suite), "--out",
          str(out), "--steps", "2", "--max-source-length", "96", "--max-target-length", "12"])
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert rows and set(r["task"] for r in rows) == set(manifest["unseen_tasks"])


def test_per_task_loras_route_each_task_to_its_own_skill(tmp_path, heldout_suite):
    from orchmoe.training.cli import per_task_fields
    manifest = read_json(heldout_suite / "manifest.json")
    fields = per_task_fields(manifest)
    assert fields["n_skills"] == fields["n_tasks"] == len(manifest["tasks"])
    assert torch.equal(torch.tensor(fields["oracle_allocation"]), torch.eye(len(manifest["tasks"])))
    base, _ = load_base(json.loads(tiny_spec("t5")))
    cfg = resolve_adapter_config({"method": "poly", "rank": 2, "target_modules": TARGETS["t5"], **fields}, manifest)
    from orchmoe.adapters import attach_adapters
    model = attach_adapters(base, cfg)
    router = next(m for m in model.modules() if hasattr(m, "oracle") and m.oracle is not None)
    router.ctx.task_ids = torch.tensor([1, -1])
    w = router.weights(None)
    assert torch.equal(w[0], torch.eye(3)[1]) and torch.allclose(w[1], torch.full((3,), 1 / 3))

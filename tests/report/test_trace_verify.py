"""`orchmoe trace --verify` on a small results tree whose run.json files are written by the real provenance code:
untouched it passes; each link edited in turn (table cell, main.csv vs main.md, metrics and predictions, every file
of the checkpoint folder, few-shot adapter, data, base model) gives rc 1 and one line naming that link."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from orchmoe.cli import main
from orchmoe.io import md5_path, write_json, write_jsonl
from orchmoe.provenance import write_run_json
from orchmoe.report.tables import build_tables
from orchmoe.report.trace import _Differs, _Verifier, verify

TASKS = ["task1_a_x", "task2_b_y"]
BASE = Path("models/t/tiny")
DATA = Path("data/processed/t/s")
CK = Path("results/checkpoints/t/s/tiny/orchmoe/seed0")
EV = Path("results/eval/t/s/tiny/orchmoe/seed0/eval")
FS = Path("results/eval/t/s/tiny/orchmoe/seed0/fewshot")
TABLES = Path("results/tables/t")


def _adapter(folder: Path, alpha: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"w": torch.arange(8.0)}, str(folder / "orchmoe_adapter.safetensors"))
    write_json(folder / "orchmoe_adapter.json", {"format": 1, "orchmoe_adapter": {"method": "orchmoe", "alpha": alpha}})


def _scores(folder: Path, score: float) -> None:
    write_jsonl(folder / "predictions.jsonl", [{"task": t, "prediction": "x", "references": ["x"]} for t in TASKS])
    mean = {"exact_match": score, "rougeL": score, "rougeLsum": score, "bleu": 1.5}
    write_json(folder / "metrics.json", {"mean": mean, "n": 2, "per_task": {t: mean for t in TASKS}})


def _done(folder: Path) -> None:
    """What Snakemake does after a job with a directory() output: an empty flag file in it, after its run.json."""
    (folder / ".snakemake_timestamp").touch()


def _build(root: Path) -> None:
    """The workflow's layout with relative paths, as the rules run the CLI from the repository root."""
    BASE.mkdir(parents=True)
    save_file({"w": torch.zeros(100)}, str(BASE / "model.safetensors"))
    write_json(BASE / "config.json", {"d_model": 8})
    _done(BASE)
    DATA.mkdir(parents=True)
    write_json(DATA / "manifest.json", {"tasks": TASKS, "seed": 0, "params": {"n_train": 2}, "sources": {}})
    for split in ("train", "eval", "unseen", "unseen_train"):
        write_jsonl(DATA / f"{split}.jsonl", [{"task": t, "split": split} for t in TASKS])
    for seed in (0, 1):
        ck = Path(f"results/checkpoints/t/s/tiny/orchmoe/seed{seed}")
        _adapter(ck, 16.0)
        write_json(ck / "routing.json", {"allocation": {}})
        (ck / "train_log.csv").write_text("step,epoch,loss,lm_loss\n1,0,2.0,2.0\n")
        write_run_json(ck / "run.json", "orchmoe train", {"adapter": {"method": "orchmoe", "rank": 2},
                       "train": {"lr": 0.1}, "base": str(BASE)}, seed, {"data": DATA, "base": BASE},
                       {p.name: p for p in sorted(ck.iterdir())})
        _done(ck)
        ev = Path(f"results/eval/t/s/tiny/orchmoe/seed{seed}/eval")
        ev.mkdir(parents=True)
        _scores(ev, 40.0 + 10 * seed)
        write_run_json(ev / "run.json", "orchmoe evaluate", {"base": str(BASE)}, seed,
                       {"data": DATA / "eval.jsonl", "checkpoint": ck, "base": BASE},
                       {"predictions.jsonl": ev / "predictions.jsonl", "metrics.json": ev / "metrics.json"})
        _done(ev)
    FS.mkdir(parents=True)  # rule adapt: the routing adapted to the held-out tasks in adapter/, then evaluated
    _adapter(FS / "adapter", 16.0)
    (FS / "adapt_log.csv").write_text("step,loss\n1,1.0\n")
    _scores(FS, 30.0)
    write_run_json(FS / "run.json", "orchmoe adapt", {"base": str(BASE)}, 0,
                   {"data": DATA / "unseen.jsonl", "few_shot": DATA / "unseen_train.jsonl", "checkpoint": CK,
                    "base": BASE}, {p.name: p for p in sorted(FS.iterdir())})
    _done(FS)
    floor = Path("results/eval/t/s/tiny/base/seed0/eval")
    floor.mkdir(parents=True)
    _scores(floor, 5.0)
    write_run_json(floor / "run.json", "orchmoe evaluate", {"base": str(BASE)}, 0,
                   {"data": DATA / "eval.jsonl", "base": BASE},
                   {"predictions.jsonl": floor / "predictions.jsonl", "metrics.json": floor / "metrics.json"})
    _done(floor)
    build_tables("results", "t", TABLES)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        _build(root)
    return root


@pytest.fixture
def tree(built, tmp_path, monkeypatch):
    """A fresh copy of the built tree per test (its records hold relative paths), as the working directory."""
    shutil.copytree(built, tmp_path / "repo")
    monkeypatch.chdir(tmp_path / "repo")
    return tmp_path / "repo"


def _edit(path, old: str, new: str) -> None:
    text = Path(path).read_text(encoding="utf-8")
    assert old in text, (path, old)
    Path(path).write_text(text.replace(old, new, 1), encoding="utf-8")


def _edit_long_value(seed: int, value: str) -> None:
    """metrics_long.csv's rougeLsum value of orchmoe's eval row for `seed` (a spreadsheet edit)."""
    lines = (TABLES / "metrics_long.csv").read_text().splitlines(keepends=True)
    head = lines[0].rstrip("\n").split(",")
    for i, line in enumerate(lines[1:], 1):
        cells = line.rstrip("\n").split(",")
        row = dict(zip(head, cells))
        if (row["run"], row["split"], row["metric"], row["seed"]) == ("orchmoe", "eval", "rougeLsum", str(seed)):
            cells[head.index("value")] = value
            lines[i] = ",".join(cells) + "\n"
    (TABLES / "metrics_long.csv").write_text("".join(lines))


def _edit_md_cell(value: str) -> None:
    """main.md's OrchMoE RougeLsum cell: | Suite | Split | Method | tiny EM | tiny RougeL | tiny RougeLsum | Seeds |"""
    md = (TABLES / "main.md").read_text()
    row = next(line for line in md.splitlines() if "| OrchMoE |" in line)
    cells = row.split(" | ")
    cells[5] = value
    (TABLES / "main.md").write_text(md.replace(row, " | ".join(cells)))


def test_untouched_chain_verifies(tree):
    ok, line = verify(TABLES, "tiny", "orchmoe", "rougeLsum")
    assert ok, line
    assert line.startswith("verify: ok: 2 metrics_long.csv value(s)")  # both seeds of the cell
    assert verify(TABLES, "tiny", "orchmoe", "rougeLsum", split="fewshot")[0]
    assert verify(TABLES, "tiny", "base", "rougeLsum")[0]  # the floor: no checkpoint
    assert verify(TABLES, "tiny", "orchmoe", "bleu", seed=1)[0]  # a metric with no main-table column
    # the records verify reads: a folder lists each file's md5, and its md5 is still md5_path's
    base = json.loads((EV / "run.json").read_text())["inputs"]["base"]
    assert set(base["files"]) == {".snakemake_timestamp", "config.json", "model.safetensors"}
    assert base["md5"] == md5_path(BASE)


EDITS = {  # what is edited -> (the edit, the split whose cell is verified, what the one line must name)
    "table cell": (lambda: _edit_long_value(0, "99.999"), "eval", "metrics_long.csv: s / eval / tiny / orchmoe"),
    "another seed's table cell": (lambda: _edit_long_value(1, "50.5"), "eval", "seed 1 = 50.5, but results/eval"),
    "main.csv cell": (lambda: _edit(TABLES / "main.csv", "45.00 ± 7.07,2", "45.10 ± 7.07,2"), "eval",
                      f"{TABLES / 'main.csv'}: s / eval / OrchMoE / tiny RougeLsum = '45.10 ± 7.07'"),
    "main.md vs main.csv": (lambda: _edit_md_cell("54.00 ± 7.07"), "eval",
                            f"{TABLES / 'main.md'}: s / eval / OrchMoE / tiny RougeLsum = '54.00 ± 7.07', but"),
    "main.md elsewhere": (lambda: _edit(TABLES / "main.md", "| 30.00 ± — | 1 |", "| 31.00 ± — | 1 |"), "eval",
                          f"{TABLES / 'main.md'}: s / fewshot / OrchMoE / tiny RougeLsum = '31.00 ± —', but"),
    "metrics file": (lambda: _edit(EV / "metrics.json", '"n": 2', '"n": 3'), "eval", f"{EV / 'metrics.json'}: md5"),
    "predictions": (lambda: _edit(EV / "predictions.jsonl", '"x"', '"y"'), "eval", f"{EV / 'predictions.jsonl'}: md5"),
    "adapter config": (lambda: _edit(CK / "orchmoe_adapter.json", '"alpha": 16.0', '"alpha": 0.0'), "eval",
                       f"{CK / 'orchmoe_adapter.json'}: md5"),
    "adapter weights": (lambda: save_file({"w": torch.ones(8)}, str(CK / "orchmoe_adapter.safetensors")), "eval",
                        f"{CK / 'orchmoe_adapter.safetensors'}: md5"),
    "missing weights": (lambda: (CK / "orchmoe_adapter.safetensors").unlink(), "eval",
                        f"{CK / 'orchmoe_adapter.safetensors'}: missing"),
    "routing": (lambda: _edit(CK / "routing.json", "{}", '{"b": [1]}'), "eval", f"{CK / 'routing.json'}: md5"),
    "checkpoint run.json": (lambda: _edit(CK / "run.json", '"lr": 0.1', '"lr": 0.2'), "eval",
                            f"{CK / 'run.json'}: md5"),
    "file added to the checkpoint": (lambda: (CK / "extra.safetensors").write_bytes(b"x"), "eval",
                                     f"{CK / 'extra.safetensors'}: not among the outputs recorded"),
    "eval data": (lambda: _edit(DATA / "eval.jsonl", "task1", "task9"), "eval", f"{DATA / 'eval.jsonl'}: md5"),
    "training data": (lambda: _edit(DATA / "train.jsonl", "task1", "task9"), "eval", f"{DATA / 'train.jsonl'}: md5"),
    "base model file": (lambda: _edit(BASE / "config.json", "8", "9"), "eval", f"{BASE / 'config.json'}: md5"),
    "few-shot adapter": (lambda: _edit(FS / "adapter/orchmoe_adapter.json", '"alpha": 16.0', '"alpha": 1.0'),
                         "fewshot", f"{FS / 'adapter/orchmoe_adapter.json'}: md5"),
    "few-shot data": (lambda: _edit(DATA / "unseen_train.jsonl", "task1", "task9"), "fewshot",
                      f"{DATA / 'unseen_train.jsonl'}: md5"),
}


@pytest.mark.parametrize("what", sorted(EDITS))
def test_each_edited_link_is_named(tree, what):
    edit, split, culprit = EDITS[what]
    edit()
    ok, line = verify(TABLES, "tiny", "orchmoe", "rougeLsum", seed=0, split=split)
    assert not ok and "\n" not in line
    assert line.startswith("verify: DIFFERS: ") and culprit in line, line


def test_md5_line_says_recorded_and_actual(tree):
    save_file({"w": torch.ones(8)}, str(CK / "orchmoe_adapter.safetensors"))
    _, line = verify(TABLES, "tiny", "orchmoe", "rougeLsum")
    now = md5_path(CK / "orchmoe_adapter.safetensors")
    recorded = json.loads((CK / "run.json").read_text())["outputs"]["orchmoe_adapter.safetensors"]["md5"]
    assert f"md5 {now}, recorded md5 {recorded}" in line


def test_fetched_base_is_checked_by_the_files_fetch_json_lists(tmp_path):
    base = tmp_path / "fetched"
    base.mkdir()
    (base / "model.safetensors").write_bytes(b"weights")
    listed = {"model.safetensors": md5_path(base / "model.safetensors")}
    write_json(base / "fetch.json", {"hub_id": "o/n", "md5": listed})
    record = {"path": str(base / "fetch.json"), "md5": md5_path(base / "fetch.json")}
    _Verifier(tmp_path).base(record, "run.json")  # as fetched: passes
    (base / "model.safetensors").write_bytes(b"other weights")
    with pytest.raises(_Differs, match=f"{base / 'model.safetensors'}: md5 .* \\({base / 'fetch.json'}\\)"):
        _Verifier(tmp_path).base(record, "run.json")


def test_cli_exit_code_and_one_verdict_line(tree, capsys):
    args = ["trace", "--tables", str(TABLES), "--base", "tiny", "--run", "orchmoe", "--verify"]
    assert main(args) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("verify: ok:")
    _edit(CK / "orchmoe_adapter.json", '"alpha": 16.0', '"alpha": 0.0')
    assert main(args) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith(f"verify: DIFFERS: {CK / 'orchmoe_adapter.json'}: md5")
    assert sum(line.startswith("verify") for line in out) == 1
    (CK / "run.json").write_text("{ edited")  # a broken record breaks the printed chain too: the verdict still comes
    assert main(args) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith(f"verify: DIFFERS: {CK / 'run.json'}: not valid JSON"), out

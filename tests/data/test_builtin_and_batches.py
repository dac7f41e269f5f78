"""The built-in suite against reference implementations of each primitive; batches for both model kinds."""
from __future__ import annotations

import json

import torch

from orchmoe.data.batching import make_collator
from orchmoe.data.builtin import PRIMITIVES, apply, composition_tasks, write_builtin_suite
from orchmoe.data.superni import read_task, sample_superni
from orchmoe.models.tiny import byte_tokenizer

REFERENCE = {
    "reverse": lambda s: "".join(reversed(s)),
    "sort": lambda s: "".join(sorted(list(s))),
    "upper": lambda s: "".join(chr(ord(c) - 32) if "a" <= c <= "z" else c for c in s),
    "dedupe": lambda s: "".join(c for i, c in enumerate(s) if c not in s[:i]),
    "rotate": lambda s: s[1:] + s[0] if s else s,
    "drop_vowels": lambda s: "".join(c for c in s if c not in "aeiouAEIOU"),
}


def test_suite_outputs_match_reference_primitives(tmp_path):
    meta = write_builtin_suite(tmp_path, n_instances=30, n_primitive_instances=30, seed=5)
    assert set(meta["primitives"]) == set(PRIMITIVES) == set(REFERENCE)
    assert 15 <= len(meta["skills"]) <= 20
    for name, skills in meta["skills"].items():
        task = read_task(tmp_path / "tasks" / f"{name}.json")
        for inst in task.instances:
            expected = inst["input"].replace(" ", "")
            for s in skills:
                expected = REFERENCE[s](expected)
            assert inst["output"] == [" ".join(expected)]
        assert all(PRIMITIVES[s][1] in task.definition for s in skills)
    # tasks are distinct functions and differ from every single primitive
    assert len(composition_tasks()) == len(set(composition_tasks()))
    assert apply(["reverse", "upper"], "abc") == "CBA"


def test_suite_is_deterministic(tmp_path):
    write_builtin_suite(tmp_path / "a", n_instances=20, n_primitive_instances=20, seed=1)
    write_builtin_suite(tmp_path / "b", n_instances=20, n_primitive_instances=20, seed=1)
    for f in sorted((tmp_path / "a").rglob("*.json")):
        assert f.read_bytes() == (tmp_path / "b" / f.relative_to(tmp_path / "a")).read_bytes()


def test_domains_travel_with_examples(tmp_path):
    meta = write_builtin_suite(tmp_path / "raw", n_instances=20, n_primitive_instances=20)
    m = sample_superni(tmp_path / "raw" / "tasks", tmp_path / "s", n_tasks="all", n_train=10, n_eval=5, n_unseen=0,
                       task_domains=meta["domains"])
    assert m["domains"] == sorted(set(meta["domains"].values()))
    for line in (tmp_path / "s" / "train.jsonl").read_text().splitlines():
        row = json.loads(line)
        assert m["domains"][row["domain_id"]] == meta["domains"][row["task"]]


RECORDS = [
    {"prompt": "Definition: x.\n\nInput: abc\nOutput:", "target": "CBA", "task_id": 0, "domain_id": 1},
    {"prompt": "Definition: longer one.\n\nInput: abcdef\nOutput:", "target": "fedcba", "task_id": 2, "domain_id": -1},
]


def test_encoder_decoder_batch():
    tok = byte_tokenizer()
    b = make_collator(tok, True, 64, 16)(RECORDS)
    assert b["input_ids"].shape == b["attention_mask"].shape == b["prompt_mask"].shape
    assert (b["labels"][0] == -100).sum() == b["labels"].shape[1] - 4  # "CBA" + eos
    assert b["task_ids"].tolist() == [0, 2] and b["domain_ids"].tolist() == [1, -1]


def test_decoder_only_train_and_generate_batches():
    tok = byte_tokenizer()
    train = make_collator(tok, False, 64, 16, "train")(RECORDS)
    n_prompt0 = len(tok(RECORDS[0]["prompt"], add_special_tokens=False)["input_ids"])
    assert train["prompt_mask"][0, :n_prompt0].all() and not train["prompt_mask"][0, n_prompt0:].any()
    target_tokens = train["labels"][0][train["labels"][0] != -100]
    assert tok.decode(target_tokens, skip_special_tokens=True) == " CBA"
    assert (train["labels"][train["prompt_mask"].bool()] == -100).all()
    gen = make_collator(tok, False, 64, 16, "generate")(RECORDS)
    assert gen["attention_mask"][0, 0] == 0 and gen["attention_mask"][:, -1].all()  # left padding
    assert "labels" not in gen and torch.equal(gen["prompt_mask"], gen["attention_mask"])


def test_truncation_is_counted_never_silent():
    collate = make_collator(byte_tokenizer(), False, 12, 3, "train")
    collate(RECORDS)
    assert collate.truncated == {"prompts": 2, "targets": 2}


def test_suite_fits_tiny_models_and_cli_writes_ground_truth(tmp_path):
    from orchmoe.cli import main
    from orchmoe.data.prompts import build_prompt

    assert main(["builtin-suite", "--out", str(tmp_path), "--n-instances", "40", "--n-primitive-instances", "10",
                 "--seed", "2"]) == 0
    meta = json.loads((tmp_path / "skills.json").read_text())
    names = sorted(p.stem for p in (tmp_path / "tasks").glob("*.json"))
    assert names == sorted(meta["skills"]) and len(names) >= 15
    assert sorted(p.stem.split("_", 1)[1] for p in (tmp_path / "primitives" / "tasks").glob("*.json")) == sorted(
        PRIMITIVES)
    definitions = set()
    for name in names:
        task = read_task(tmp_path / "tasks" / f"{name}.json")
        definitions.add(task.definition)
        assert len({i["input"] for i in task.instances}) == len(task.instances)  # distinct inputs
        for inst in task.instances:
            assert len(build_prompt(task.definition, inst["input"]).encode()) <= 96
            assert len(inst["output"][0].encode()) <= 20
    assert len(definitions) == len(names)  # the definition alone identifies the task
    assert main(["builtin-suite", "--out", str(tmp_path / "x"), "--n-instances", "0"]) == 2
    assert not (tmp_path / "x" / "skills.json").exists()

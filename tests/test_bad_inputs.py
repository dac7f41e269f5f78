"""The catalogue of bad inputs (issue 6, section 4): every row is one mistake a user makes, the exact one-line
message it must produce (naming the file, key or value at fault), and a check that nothing partial was left behind.

CLI rows run `orchmoe.cli.main` in-process (fast); workflow rows run `snakemake --dry-run` on a copy of the
repository with one config key broken; the SLURM-profile row needs the local cluster (marked integration).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import yaml

from orchmoe.adapters.registry import method_names
from orchmoe.cli import main

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


# ------------------------------------------------------------------ fixtures: a tiny valid world to break
def task_json(name_defn="Copy the input.", n=6, prefix="x"):
    return {"Definition": [name_defn], "Positive Examples": [], "Input_language": ["English"],
            "Output_language": ["English"], "Categories": ["Copy"],
            "Instances": [{"id": f"{prefix}-{i}", "input": f"word{i}", "output": [f"word{i}"]} for i in range(n)]}


def write_tasks(folder: Path, tasks: dict[str, object]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in tasks.items():
        p = folder / f"{name}.json"
        p.write_text(content if isinstance(content, str) else json.dumps(content))
    return folder


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    """A valid 2-task suite (no domains)."""
    root = tmp_path_factory.mktemp("suite")
    tasks = write_tasks(root / "tasks", {"task001_copy": task_json(), "task002_echo": task_json(prefix="y")})
    assert main(["superni-sample", "--tasks-dir", str(tasks), "--out", str(root / "suite"), "--n-tasks", "all",
                 "--n-train", "4", "--n-eval", "2", "--n-unseen", "0"]) == 0
    return root / "suite"


@pytest.fixture(scope="module")
def nan_base(tmp_path_factory) -> Path:
    """A tiny T5 saved with one NaN weight: the injected fault behind a NaN loss."""
    import torch

    from orchmoe.models.tiny import build_tiny, byte_tokenizer

    model = build_tiny("t5")
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if "lm_head" in n or "shared" in n).fill_(float("nan"))
    out = tmp_path_factory.mktemp("nanbase") / "nan-t5"
    model.save_pretrained(out)
    byte_tokenizer().save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A valid LoRA checkpoint on the tiny T5 (TINY below): orchmoe_adapter.json + orchmoe_adapter.safetensors."""
    from orchmoe.adapters import AdapterConfig, attach_adapters
    from orchmoe.models.tiny import build_tiny

    out = tmp_path_factory.mktemp("ckpt") / "lora"
    cfg = AdapterConfig.from_dict({"method": "lora", "rank": 2, "target_modules": ["q", "v"]})
    attach_adapters(build_tiny("t5"), cfg).save_adapters(out)
    return out


def copy_suite(tmp: Path, suite: Path, **files: bytes) -> None:
    """tmp/badsuite: a copy of the valid suite with some files replaced by the given bytes."""
    shutil.copytree(suite, tmp / "badsuite")
    for name, data in files.items():
        (tmp / "badsuite" / name.replace("_", ".")).write_bytes(data)


def copy_checkout_files(tmp: Path, ckpt: Path, **files) -> None:
    """tmp/badckpt: a copy of the valid checkpoint with some files replaced (bytes, or a function of the old bytes)."""
    shutil.copytree(ckpt, tmp / "badckpt")
    for name, data in files.items():
        f = tmp / "badckpt" / name.replace("__", ".")
        f.write_bytes(data(f.read_bytes()) if callable(data) else data)


def eval_argv(base=None, checkpoint="{tmp}/badckpt"):
    return lambda tmp, ctx: ["evaluate", "--base", base or TINY, "--checkpoint", fill(checkpoint, ctx),
                             "--data", str(ctx["suite"]), "--out", str(tmp / "out")]


TINY = '{"source": "tiny", "arch": "t5"}'
LORA = '{"method": "lora", "rank": 2, "target_modules": ["q", "v"]}'
TRAIN = '{"max_steps": 2, "batch_size": 2, "lr": 0.001}'


@dataclass
class Case:
    id: str
    argv: Callable[[Path, dict], list[str]]     # (tmp, ctx) -> argv for `orchmoe`
    message: str                                # regex the one-line error must match ({tmp} is substituted)
    out: str = "out"                            # what must not exist afterwards, relative to tmp
    setup: Callable[[Path], None] = field(default=lambda tmp: None)
    setup_ctx: Callable[[Path, dict], None] = field(default=lambda tmp, ctx: None)  # setups that need fixtures


def fill(text: str, ctx: dict) -> str:
    for key, value in ctx.items():
        text = text.replace("{" + key + "}", str(value))
    return text


def train_argv(adapter=LORA, train=TRAIN, base=TINY, data=None):
    return lambda tmp, ctx: ["train", "--base", fill(base, ctx), "--data", fill(data, ctx) if data else str(ctx["suite"]),
                             "--adapter-config", adapter, "--train-config", train, "--out", str(tmp / "out"),
                             "--work", str(tmp / "work")]


def init_argv():
    moe = '{"method": "moe_lora", "rank": 2, "n_skills": 2, "target_modules": ["q", "v"]}'
    return lambda tmp, ctx: train_argv(adapter=moe)(tmp, ctx) + ["--init-skills", str(tmp / "peft"), str(tmp / "peft")]


def peft_setup(tmp: Path, r: int, targets: list[str]) -> None:
    """A PEFT LoRA folder for the tiny T5, as a hub download would hold."""
    import peft

    from orchmoe.models.tiny import build_tiny

    peft.get_peft_model(build_tiny("t5"), peft.LoraConfig(r=r, target_modules=targets)).save_pretrained(tmp / "peft")


def sample_argv(*extra, tasks="tasks"):
    return lambda tmp, ctx: ["superni-sample", "--tasks-dir", str(tmp / tasks), "--out", str(tmp / "out"),
                             "--n-tasks", "all", "--n-train", "4", "--n-eval", "2", "--n-unseen", "0", *extra]


def tasks_setup(tasks: dict):
    return lambda tmp: write_tasks(tmp / "tasks", tasks)


def read_only_setup(tmp: Path):
    """A folder the command cannot write into. chmod does not stop root, so use the immutable flag there."""
    ro = tmp / "ro"
    ro.mkdir()
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(ro)]).returncode != 0:
            pytest.skip("running as root without chattr +i support: cannot make a read-only folder")
    else:
        ro.chmod(0o555)


CASES = [
    # --- data: missing/malformed/empty task files, sampling beyond the data
    Case("tasks-dir-missing", sample_argv(tasks="nope"), r"{tmp}/nope: Super-NI tasks directory not found"),
    Case("tasks-dir-empty", sample_argv(), r"{tmp}/tasks: no task\*\.json files", setup=tasks_setup({})),
    Case("task-json-malformed", sample_argv(), r"{tmp}/tasks/task002_bad\.json: not valid JSON",
         setup=tasks_setup({"task001_ok": task_json(), "task002_bad": '{"Definition": ["x"], "Instances": [,]}'})),
    Case("task-json-empty-file", sample_argv(), r"{tmp}/tasks/task001_empty\.json: not valid JSON",
         setup=tasks_setup({"task001_empty": ""})),
    Case("task-json-not-object", sample_argv(), r"{tmp}/tasks/task001_list\.json: a task file must hold a JSON object",
         setup=tasks_setup({"task001_list": [1, 2]})),
    Case("task-no-definition", sample_argv(), r"{tmp}/tasks/task001_nodef\.json: field 'Definition' is missing or empty",
         setup=tasks_setup({"task001_nodef": {**task_json(), "Definition": []}})),
    Case("task-no-instances", sample_argv(), r"{tmp}/tasks/task001_noinst\.json: field 'Instances' is missing or empty",
         setup=tasks_setup({"task001_noinst": {**task_json(), "Instances": []}})),
    Case("instance-without-output", sample_argv(),
         r"{tmp}/tasks/task001_noout\.json: Instances\[0\] \(id 'z'\) has no 'output'",
         setup=tasks_setup({"task001_noout": {**task_json(), "Instances": [{"id": "z", "input": "a", "output": []}]}})),
    Case("n-tasks-beyond-data",
         lambda tmp, ctx: ["superni-sample", "--tasks-dir", str(tmp / "tasks"), "--out", str(tmp / "out"),
                           "--n-tasks", "5", "--n-unseen", "0"],
         r"{tmp}/tasks: n_tasks=5 but only 1 eligible tasks", setup=tasks_setup({"task001_a": task_json()})),
    Case("sample-beyond-data-strict", sample_argv("--strict"),
         r"{tmp}/tasks/task001_small\.json: 3 instances, fewer than n_train \+ n_eval = 6 \(strict sampling\)",
         setup=tasks_setup({"task001_small": task_json(n=3)})),
    Case("task-domains-file-missing", sample_argv("--task-domains", "/nonexistent/skills.json"),
         r"/nonexistent/skills\.json: --task-domains file not found", setup=tasks_setup({"task001_a": task_json()})),
    Case("task-json-not-utf8", sample_argv(), r"{tmp}/tasks/task002_latin1\.json: not UTF-8 text",
         setup=lambda tmp: (write_tasks(tmp / "tasks", {"task001_a": task_json()}),
                            (tmp / "tasks" / "task002_latin1.json").write_bytes(
                                json.dumps(task_json("Copi\u00e9 it.")).replace("\\u00e9", "\u00e9")
                                .encode("latin-1")))),
    Case("split-file-missing", sample_argv("--split-file", "/nonexistent/test_tasks.txt"),
         r"/nonexistent/test_tasks\.txt: split file not found", setup=tasks_setup({"task001_a": task_json()})),
    # --- orchmoe warm (the fork server for many short jobs)
    Case("warm-without-command", lambda tmp, ctx: ["warm", "--"],
         r"orchmoe warm: error: no command given \(usage: orchmoe warm -- snakemake \.\.\.\)"),
    Case("warm-command-not-found", lambda tmp, ctx: ["warm", "--", "snakemak", "--cores", "1"],
         r"orchmoe warm: error: snakemak: command not found"),
    # --- bases and parameter tables
    Case("base-dtype-unknown", train_argv(base='{"source": "tiny", "arch": "t5", "dtype": "fp8"}'),
         r"base spec: dtype='fp8' must be 'auto' or one of float32, bfloat16, float16"),
    Case("fetch-base-not-a-hub-id", lambda tmp, ctx: ["fetch-base", "--spec", '{"path": "nohub"}', "--out",
                                                      str(tmp / "out")],
         r"base folder not found: nohub \(a hub id is owner/name\)$"),
    Case("params-unknown-architecture", lambda tmp, ctx: ["params", "--architecture", "glm-100b", "--method", "lora"],
         r"architecture 'glm-100b': not shipped"),
    # --- adapter / training configuration: typos, wrong types, unknown values
    Case("fused-target-malformed", train_argv(adapter='{"method": "lora", "rank": 2, "target_modules": ["qkv:q"]}'),
         r"target_modules: 'qkv:q' must be 'module:slice,slice\[,\.\.\.\]'"),
    Case("adapter-key-typo", train_argv(adapter='{"method": "lora", "rnak": 2, "target_modules": ["q"]}'),
         r"adapter config: unknown field 'rnak'"),
    Case("adapter-wrong-type", train_argv(adapter='{"method": "lora", "rank": "four", "target_modules": ["q"]}'),
         r"adapter config: rank='four' must be a positive integer"),
    Case("unknown-method", train_argv(adapter='{"method": "lorax", "rank": 2, "target_modules": ["q"]}'),
         r"adapter config: method='lorax' is not a known method"),
    Case("method-option-typo", train_argv(adapter='{"method": "lora", "options": {"temprature": 2}, '
                                              '"target_modules": ["q"]}'),
         r"adapter config: options=\{'temprature': 2\} has 'temprature', not a setting of method 'lora'"),
    Case("adapter-config-not-json", train_argv(adapter="{method: lora"), r"'\{method: lora': neither a file nor a JSON object"),
    Case("train-key-typo", train_argv(train='{"max_step": 2}'), r"train config: unknown field 'max_step'"),
    Case("train-nonpositive-lr", train_argv(train='{"lr": 0}'), r"train config: lr=0 must be positive"),
    Case("train-wrong-type", train_argv(train='{"batch_size": "sixteen"}'), r"train config: batch_size='sixteen'"),
    Case("train-checkpointing-not-a-flag", train_argv(train='{"gradient_checkpointing": "yes"}'),
         r"train config: gradient_checkpointing='yes' must be true or false"),
    Case("moa-without-domains", train_argv(adapter='{"method": "moa", "rank": 2, "target_modules": ["q"]}'),
         r"method 'moa' needs a suite with domain labels"),
    # --- data and models on disk
    Case("suite-without-manifest", train_argv(data="/nonexistent/suite"),
         r"/nonexistent/suite: not a complete suite \(manifest\.json missing\)"),
    Case("unknown-base-model", train_argv(base="./no-such-model"), r"base folder not found: \./no-such-model$"),
    Case("gguf-file-missing", train_argv(base="{tmp}/models/SmolLM2-135M-Instruct.Q4_1.gguf"),
         r"{tmp}/models/SmolLM2-135M-Instruct\.Q4_1\.gguf: GGUF file not found"),
    Case("base-folder-empty", train_argv(base="{tmp}/emptybase"),
         r"{tmp}/emptybase: base model folder holds neither config\.json nor a \.gguf file",
         setup=lambda tmp: (tmp / "emptybase").mkdir()),
    Case("nan-loss-injected", train_argv(base="{nan_base}"), r"non-finite loss \(nan\) at step 1 of lora"),
    # --- PEFT LoRA folders as skills (--init-skills): the folder is named on every mismatch
    Case("init-skill-peft-rank", init_argv(), r"{tmp}/peft: .*lora_A \(4, 64\).* \(rank 2\)",
         setup=lambda tmp: peft_setup(tmp, r=4, targets=["q", "v"])),
    Case("init-skill-peft-targets", init_argv(), r"{tmp}/peft: its LoRA modules differ from this config's target_modules",
         setup=lambda tmp: peft_setup(tmp, r=2, targets=["q", "k"])),
    Case("init-skill-not-lora", init_argv(), r"{tmp}/peft: a skill must be a PEFT LoRA folder, got peft_type='IA3'",
         setup=lambda tmp: (tmp / "peft").mkdir() or (tmp / "peft" / "adapter_config.json").write_text(
             '{"peft_type": "IA3"}')),
    Case("export-not-a-run", lambda tmp, ctx: ["export", str(tmp), "--out", str(tmp / "out")],
         r"{tmp}: not a training run \(run\.json missing\)"),
    Case("checkpoint-not-adapter",
         lambda tmp, ctx: ["evaluate", "--base", TINY, "--checkpoint", str(tmp), "--data", str(ctx["suite"]),
                           "--out", str(tmp / "out")],
         r"{tmp}: not an adapter checkpoint \(orchmoe_adapter\.json missing\)"),
    Case("suite-jsonl-malformed", train_argv(data="{tmp}/badsuite"), r"{tmp}/badsuite/train\.jsonl:2: not valid JSON",
         setup_ctx=lambda tmp, ctx: copy_suite(tmp, ctx["suite"], train_jsonl=b'{"id": "a"}\n{"id": "b", oops\n')),
    Case("suite-jsonl-not-utf8", train_argv(data="{tmp}/badsuite"), r"{tmp}/badsuite/train\.jsonl: not UTF-8 text",
         setup_ctx=lambda tmp, ctx: copy_suite(tmp, ctx["suite"], train_jsonl=b'{"id": "caf\xe9"}\n')),
    Case("suite-manifest-malformed", train_argv(data="{tmp}/badsuite"), r"{tmp}/badsuite/manifest\.json: not valid JSON",
         setup_ctx=lambda tmp, ctx: copy_suite(tmp, ctx["suite"], manifest_json=b'{"tasks": [')),
    Case("adapter-config-malformed", eval_argv(), r"{tmp}/badckpt/orchmoe_adapter\.json: not valid JSON",
         setup_ctx=lambda tmp, ctx: copy_checkout_files(tmp, ctx["checkpoint"], orchmoe_adapter__json=b'{"orchmoe_adapter": {')),
    Case("adapter-weights-truncated", eval_argv(),
         r"{tmp}/badckpt/orchmoe_adapter\.safetensors: not a readable safetensors file",
         setup_ctx=lambda tmp, ctx: copy_checkout_files(tmp, ctx["checkpoint"],
                                                        orchmoe_adapter__safetensors=lambda b: b[: len(b) // 2])),
    Case("adapter-base-shape-mismatch", eval_argv(base='{"source": "tiny", "arch": "t5", "d_model": 48}',
                                                  checkpoint="{checkpoint}"),
         r"orchmoe_adapter\.safetensors: adapter weights do not fit this base model "
         r"\(\S+: checkpoint \(1, 2, 64\), base expects \(1, 2, 48\)\)"),
    Case("read-only-output-folder",
         lambda tmp, ctx: ["superni-sample", "--tasks-dir", str(tmp / "tasks"), "--out", str(tmp / "ro" / "suite"),
                           "--n-tasks", "all", "--n-train", "4", "--n-eval", "2", "--n-unseen", "0"],
         r"{tmp}/ro", out="ro/suite",
         setup=lambda tmp: (write_tasks(tmp / "tasks", {"task001_a": task_json()}), read_only_setup(tmp))),
]


def listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cli_bad_input(case: Case, tmp_path, suite, nan_base, checkpoint, capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    ctx = {"suite": suite, "nan_base": nan_base, "checkpoint": checkpoint, "tmp": tmp_path}
    case.setup(tmp_path)
    case.setup_ctx(tmp_path, ctx)
    before = listing(tmp_path)
    try:
        code = main(case.argv(tmp_path, ctx))
    finally:
        if (tmp_path / "ro").exists() and os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(tmp_path / "ro")])
    err = capsys.readouterr().err
    assert code == 2, f"expected a clean user error (exit 2), got {code}: {err[-1000:]}"
    # Progress bars share the line (carriage returns), so look for the error itself.
    errors = re.findall(r"orchmoe [\w-]+: error: [^\r\n]*", err)
    assert len(errors) == 1, f"expected one error line, got: {err[-1000:]}"
    line = errors[0]
    expected = case.message.replace("{tmp}", re.escape(str(tmp_path)))
    assert re.search(expected, line), f"\n  message: {line}\n  wanted:  {expected}"
    # Nothing partial: neither the output nor any temporary sibling appeared; the resumable work folder holds no
    # checkpoint either (nothing was trained).
    assert not (tmp_path / case.out).exists()
    new = listing(tmp_path) - before
    leftovers = [p for p in new if not p.startswith("work")]
    assert not leftovers, f"left behind: {sorted(leftovers)}"
    assert not list((tmp_path / "work").rglob("*.safetensors"))  # (an absent folder globs to nothing)


# ------------------------------------------------------------------ a base that is neither a folder nor reachable
UNREACHABLE_HUB = "http://127.0.0.1:9"  # the discard port: refused at once, with or without a network


@pytest.mark.parametrize("base,message,offline", [
    ("models/no-such-model", r"base folder not found: models/no-such-model$", False),  # models/ is a local folder
    ("runs/a/b", r"base folder not found: runs/a/b$", False),  # two '/': no hub id (was: `Repo id must be ...`)
    ("~/no-such-orchmoe-base", r"base folder not found: ~/no-such-orchmoe-base$", False),
    ("orchmoe-test/no-such-model", r"base model 'orchmoe-test/no-such-model': the hub \(http://127\.0\.0\.1:9\) is "
     r"unreachable \(.+\) and the local hub cache does not hold it$", False),
    ("orchmoe-test/no-such-model", r"base model 'orchmoe-test/no-such-model': not in the local hub cache \(.+\) and "
     r"HF_HUB_OFFLINE is set$", True),
], ids=["relative-folder", "deep-folder", "home-folder", "hub-unreachable", "hub-offline"])
def test_base_not_found_fast(base, message, offline, tmp_path, suite, capsys, monkeypatch):
    """A missing folder is named as one (not retried as a hub id); a hub id the hub cannot serve: one line in < 5 s
    (was: ~40 s of retries and 13 lines)."""
    import time

    from huggingface_hub import HfApi, constants  # noqa: F401  imported before the clock starts: not what is timed

    import orchmoe.models.loading  # noqa: F401  (torch, transformers)

    (tmp_path / "models").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(constants, "ENDPOINT", UNREACHABLE_HUB)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))  # an empty cache
    start = time.monotonic()
    code = main(["train", "--base", base, "--data", str(suite), "--adapter-config", LORA, "--train-config", TRAIN,
                 "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")])
    elapsed = time.monotonic() - start
    err = capsys.readouterr().err
    errors = re.findall(r"orchmoe train: error: [^\r\n]*", err)
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err[-2000:]
    assert re.search(message, errors[0]), errors[0]
    assert elapsed < 5, f"{elapsed:.1f} s"
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ workflow configuration (Snakemake schema)
@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    from tests.integration.conftest import copy_checkout

    return copy_checkout(tmp_path_factory.mktemp("checkout"))


def _break(cfg: dict, how: str) -> dict:
    if how == "typo":
        cfg["seeds_typo"] = cfg.pop("seeds")
    elif how == "wrong-type":
        cfg["seeds"] = "zero"
    elif how == "unknown-method":
        first = next(iter(cfg["methods"]))
        cfg["methods"][first]["method"] = "lorax"
    elif how == "unknown-domain-source":
        suites = cfg["suites"] if "suites" in cfg else {"suite": cfg["suite"]}
        next(iter(suites.values()))["source"] = "superduper"
    elif how == "method-unknown-base":
        cfg["methods"]["lora"]["bases"] = ["tiny-t6"]
    elif how == "method-unknown-suite":
        cfg["methods"]["lora"]["suites"] = ["bultin"]
    elif how == "init-from-typo":
        next(e for e in cfg["methods"].values() if e.get("init_from"))["init_from"] = "lora_domian"
    elif how == "superni-tasks-dir-missing":
        cfg["suites"]["sn"] = {"source": "superni", "tasks_dir": "../nowhere/tasks", "n_train": 2, "n_eval": 1}
    elif how == "figures-unknown-suite":
        cfg["figures"] = {"suite": "bultin"}
    elif how == "method-train-override-typo":
        cfg["methods"]["lora"]["train"] = {"max_step": 3}
    elif how == "sweep-key-typo":
        cfg["methods"]["lora"]["sweep"] = {"rnak": [2, 4]}
    elif how == "sweep-value-wrong-type":
        cfg["methods"]["lora"]["sweep"] = {"rank": ["two"]}
    elif how == "superni-tasks-dir-empty":  # a folder without task*.json files
        cfg["suites"]["sn"] = {"source": "superni", "tasks_dir": "config", "n_train": 2, "n_eval": 1, "domains": ["a"]}
    elif how == "domains-config-missing":
        cfg["suites"]["dm"] = {"source": "domains", "domains_config": "config/nowhere.yaml", "domains": ["a"],
                               "n_train": 2, "n_eval": 1}
    elif how == "base-folder-missing":
        cfg["bases"]["mine"] = {"source": "path", "path": "bases/t5/nowhere", "target_modules": ["q"]}
    elif how == "init-from-folder-missing":
        cfg["methods"]["moe_lora"]["init_from"] = ["skills/nowhere"]
    elif how == "report-undefined-run":
        cfg["report"] = {"tables": {"t1": {"layout": "methods", "caption": "c", "bases": list(cfg["bases"]),
                                           "runs": {"lora": "LoRA", "lorra": "typo"},
                                           "columns": [{"suite": "builtin", "split": "eval"}]}}}
    elif how == "report-undefined-entry":
        cfg["report"] = {"figures": {"f2": {"layout": "score_vs_params", "caption": "c", "suite": "builtin",
                                            "bases": list(cfg["bases"]), "lines": {"LoRA": ["lora", "lora_r"]}}}}
    return cfg


WORKFLOW_CASES = [
    ("typo", r"seeds_typo"),
    ("wrong-type", r"'zero' is not of type 'array'"),
    ("unknown-method", r"methods\.\w+\.method: " + re.escape(f"'lorax' is not one of {method_names()}")),
    ("unknown-domain-source", r"'superduper' is not one of"),
    # cross-references, checked before the run table is built (common.smk check_references)
    ("method-unknown-base", r"methods\.lora\.bases: unknown base 'tiny-t6'"),
    ("method-unknown-suite", r"methods\.lora\.suites: unknown suite 'bultin'"),
    ("init-from-typo", r"methods\.\w+\.init_from: 'lora_domian' is not a method entry with per_domain: true"),
    ("figures-unknown-suite", r"figures\.suite: unknown suite 'bultin'"),
    ("superni-tasks-dir-missing", r"suites\.sn\.tasks_dir: '\.\./nowhere/tasks' is not a folder"),
    # caught at dry-run time, not hours later inside the training job
    ("method-train-override-typo", r"methods\.lora\.train: Additional properties are not allowed \('max_step'"),
    ("sweep-key-typo", r"methods\.lora\.sweep: 'rnak' is not an adapter field"),
    ("sweep-value-wrong-type", r"methods\.lora\.sweep\.rank: 'two' is not of type 'integer'"),
    # files and folders the config names, and what the report layouts name (common.smk check_inputs)
    ("superni-tasks-dir-empty", r"suites\.sn\.tasks_dir: 'config' holds no task\*\.json files$"),
    ("domains-config-missing", r"suites\.dm\.domains_config: 'config/nowhere\.yaml': no such file$"),
    ("base-folder-missing", r"bases\.mine\.path: base folder not found: bases/t5/nowhere$"),
    ("init-from-folder-missing", r"methods\.moe_lora\.init_from: 'skills/nowhere': no such folder$"),
    ("report-undefined-run", r"report\.tables\.t1\.runs: no run 'lorra' in this config \(did you mean 'lora'\?\)$"),
    ("report-undefined-entry", r"report\.figures\.f2\.lines\.LoRA: no method entry 'lora_r' in this config"),
]


@pytest.mark.parametrize("how,message", WORKFLOW_CASES, ids=[f"config-{h}" for h, _ in WORKFLOW_CASES])
def test_workflow_config_bad_input(how, message, checkout, tmp_path):
    cfg = _break(yaml.safe_load((checkout / "config" / "demo.yaml").read_text()), how)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([str(BIN / "snakemake"), "--dry-run", "--configfile", str(bad), "--cores", "1"],
                          cwd=checkout, env=env, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-2000:]
    # one line naming the config file and the key; no traceback, no schema dump
    errors = [line for line in out.splitlines() if line.startswith("config error: ")]
    assert len(errors) == 1 and "Traceback" not in out and "Failed validating" not in out, out[-2000:]
    assert errors[0].startswith(f"config error: {os.path.relpath(bad, checkout)}: "), errors[0]
    assert re.search(message, errors[0]), out[-2000:]
    assert not list((checkout / "results").glob("*/*"))
    assert not (checkout / "data" / "processed").exists()


# ------------------------------------------------------------------ a SLURM profile naming a partition that is not there
@pytest.mark.integration
def test_profile_missing_partition(tmp_path):
    from tests.integration.conftest import slurm_ready

    why = slurm_ready()
    if why:
        pytest.skip(why)
    (tmp_path / "Snakefile").write_text("rule a:\n    output: 'a.txt'\n    shell: 'echo $SLURM_JOB_ID > {output}'\n")
    os.symlink(REPO / "workflow" / "profiles" / "slurm", tmp_path / "slurm")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "ORCHMOE_SLURM_PARTITION": "nosuchpart"}
    proc = subprocess.run([str(BIN / "snakemake"), "--profile", "slurm"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert re.search(r"ORCHMOE_SLURM_PARTITION='nosuchpart': no such partition on this cluster \(partitions: \w+",
                     out), out[-2000:]
    assert not (tmp_path / "a.txt").exists()
    assert not (tmp_path / ".snakemake" / "slurm_logs").exists()

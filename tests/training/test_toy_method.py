"""A method added from outside the package, in one file with one register call (docs/methods.md "Adding a method"),
is seen by every reader: config validation (AdapterConfig and the workflow's dry run), training, evaluation, the
tables and the parametrised test lists."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchmoe.adapters import registry
from orchmoe.adapters.config import AdapterConfig
from orchmoe.cli import main
from orchmoe.errors import ConfigError
from orchmoe.paths import checkpoint_dir, eval_dir

from .conftest import FAST, TARGETS
from .conftest import tiny_spec as _tiny_spec

REPO = Path(__file__).resolve().parents[2]
TOY = '''"""ToyMix: one learned softmax over the skills, the same for every input."""
import torch
from torch import nn

from orchmoe.adapters.registry import MethodSpec, register_method
from orchmoe.adapters.routing import Router


class ToyMixRouter(Router):
    mix = "outputs"

    def __init__(self, cfg, d_in: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(cfg.n_skills))
        self.temperature = cfg.options["temperature"]

    def weights(self, x):
        return torch.softmax(self.logits / self.temperature, -1).expand(x.shape[0], -1)


SPEC = register_method(MethodSpec(name="toymix", label="ToyMix", router=ToyMixRouter, defaults={"n_skills": 3},
                                  options={"temperature": 1.0}, paper={"rank": 2, "n_skills": 3}))
'''


def test_a_method_module_that_does_not_import_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv(registry.ENV, "no_such_method_module")
    monkeypatch.setattr(registry, "_loaded", False)
    assert main(["methods"]) == 2
    assert "ORCHMOE_METHODS: cannot import method module 'no_such_method_module'" in capsys.readouterr().err
    monkeypatch.setattr(registry, "_loaded", False)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    folder = tmp_path / "methods"
    folder.mkdir()
    (folder / "toymix.py").write_text(TOY)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv(registry.ENV, "toymix")
    monkeypatch.setattr(registry, "_loaded", False)  # read ORCHMOE_METHODS again
    yield folder
    registry._SPECS.pop("toymix", None)
    sys.modules.pop("toymix", None)
    registry._loaded = False


def test_toy_method_is_seen_everywhere(toy, tmp_path, suite, monkeypatch, capsys):
    from orchmoe.adapters.paper import settings
    from orchmoe.report.figures import routed
    from orchmoe.report.tables import build_tables, labels

    # the registry and its readers
    assert registry.methods()[-1] == "toymix" and "toymix" in registry.method_names()
    cfg = AdapterConfig.from_dict({"method": "toymix", "target_modules": ["q"]})
    assert cfg.n_skills == 3 and cfg.options == {"temperature": 1.0}  # its defaults
    with pytest.raises(ConfigError, match="options=.*'temprature', not a setting of method 'toymix'"):
        AdapterConfig.from_dict({"method": "toymix", "options": {"temprature": 2.0}})
    assert labels()["toymix"] == "ToyMix" and "toymix" in routed() and settings()["toymix"]["rank"] == 2
    assert main(["methods"]) == 0 and "toymix     ToyMix" in capsys.readouterr().out

    # training and evaluation through the CLI, laid out as the workflow lays them out, then the tables
    results, exp, base = tmp_path / "results", "toy", "tiny-t5"
    ckpt = Path(checkpoint_dir(exp, suite.name, base, "toy", 0, results))
    ev = Path(eval_dir(exp, suite.name, base, "toy", 0, "eval", results))
    adapter = json.dumps({"method": "toymix", "target_modules": TARGETS["t5"], "rank": 2,
                          "options": {"temperature": 2.0}})
    assert main(["train", "--base", _tiny_spec("t5"), "--data", str(suite), "--adapter-config", adapter,
                 "--train-config", json.dumps(FAST), "--out", str(ckpt), "--work", str(tmp_path / "work")]) == 0
    saved = json.loads((ckpt / "orchmoe_adapter.json").read_text())["orchmoe_adapter"]
    assert saved["method"] == "toymix" and saved["options"] == {"temperature": 2.0}
    assert main(["evaluate", "--base", _tiny_spec("t5"), "--checkpoint", str(ckpt), "--data", str(suite),
                 "--out", str(ev), "--max-source-length", "96", "--max-target-length", "12"]) == 0
    assert json.loads((ev / "metrics.json").read_text())["n"] == 8
    build_tables(results, exp, tmp_path / "tables")
    main_md = (tmp_path / "tables" / "main.md").read_text()
    assert "| ToyMix (toy) |" in main_md, main_md  # the label from its registry entry, then the run name

    # the parametrised test lists and the workflow's dry run, in fresh processes that read ORCHMOE_METHODS
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(toy), str(REPO / "src")]), "OMP_NUM_THREADS": "1"}
    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                                "tests/training/test_engine.py", "tests/adapters/test_core.py"],
                               cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert "test_train_then_evaluate_every_method[toymix-t5]" in collected.stdout, collected.stdout[-2000:]
    assert "[toymix" in collected.stdout.split("tests/adapters/test_core.py", 1)[-1], collected.stdout[-2000:]

    from tests.workflow.helpers import copy_workflow, snakemake

    (tmp_path / "checkout").mkdir()
    checkout = copy_workflow(tmp_path / "checkout")
    cfg = yaml.safe_load((checkout / "config" / "demo.yaml").read_text())
    cfg["methods"] = {"toy": {"method": "toymix", "rank": 2, "options": {"temperature": 2.0}}}
    (checkout / "config" / "toy.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.setenv(registry.ENV, "")  # without the variable the dry run rejects the name, in one line
    refused = snakemake("--dry-run", "--configfile", "config/toy.yaml", "--cores", "1", cwd=checkout, check=False)
    assert refused.returncode == 2 and "methods.toy.method: 'toymix' is not one of" in refused.stderr
    monkeypatch.setenv(registry.ENV, "toymix")
    plan = snakemake("--dry-run", "--configfile", "config/toy.yaml", "--cores", "1", cwd=checkout)
    assert "/toy/seed" in plan.stdout, plan.stdout[-2000:]

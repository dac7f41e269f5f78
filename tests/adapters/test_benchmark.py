"""benchmarks/adapter_overhead.py --quick: every configuration runs (ours and PEFT's, training and generation) and
the report has the promised rows, ratios and target verdicts. Timings are not checked: they are the benchmark's."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("adapter_overhead", ROOT / "benchmarks" / "adapter_overhead.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table(lines, title_start):
    i = next(i for i, line in enumerate(lines) if line.startswith(title_start))
    rows = []
    for line in lines[i + 3:]:
        if not line.startswith("| "):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return lines[i + 1], rows


def test_quick_run_reports_every_method_beside_peft(bench, tmp_path, capsys):
    docs = tmp_path / "methods.md"
    docs.write_text("# Methods\n\n## Benchmark: adapter overhead (old)\n\nold numbers\n\n## Next section\nkept\n")
    assert bench.main(["--quick", "--update-docs", str(docs)]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [bench.BASE, *bench.PEFT, *bench.OURS]
    assert re.match(r"# load before \(/proc/loadavg 1/5/15 min\): ", lines[1])
    for arch in ("t5", "llama"):
        header, rows = _table(lines, f"{arch}: one training step")
        assert header.startswith("| method | seconds | x PEFT LoRA r32 | x PEFT twin | target | met | 95% CI | GFLOP |")
        assert [r[0] for r in rows] == names
        by = {r[0]: r for r in rows}
        assert by["peft lora r32"][2] == "1.00"
        assert float(by["lora r32"][3]) == pytest.approx(float(by["lora r32"][2]), abs=0.011)  # twin = PEFT LoRA
        for name in bench.OURS:
            assert by[name][5] in ("yes", "NO") and by[name][4].startswith("<= ")
            lo, hi = map(float, by[name][6].split("-"))
            assert 0 < lo <= hi
        assert by["poly 4xr8"][4] == "<= 1.00x PEFT twin" and by["orchmoe 4xr4"][4] == "<= 1.10x PEFT LoRA"
        assert by["peft lora r32"][6] == "" and by["peft lora r32"][8] == "1.000"
        assert float(by["lora r32"][8]) == pytest.approx(1.0, abs=0.01)
        header, rows = _table(lines, f"{arch}: the ")
        assert header.startswith("| method | ms | x PEFT twin | 95% CI | GFLOP | aten ops | ops x PEFT twin |")
        by = {r[0]: r for r in rows}
        assert list(by) == [*bench.PEFT, "lora r32", "poly 4xr8", "mhr 4xr8"]  # the methods PEFT implements too
        for ours in ("lora r32", "poly 4xr8", "mhr 4xr8"):
            lo, hi = map(float, by[ours][3].split("-"))
            assert 0 < lo <= float(by[ours][2]) + 0.005 and lo <= hi
            assert int(by[ours][5]) > 0 and float(by[ours][6]) > 0
        assert by["peft poly 4xr8"][2] == by["peft poly 4xr8"][3] == ""
        header, rows = _table(lines, f"{arch}: greedy generation")
        assert header.startswith("| method | seconds | tokens/s | x base | x PEFT LoRA r32 |")
        by = {r[0]: r for r in rows}
        assert list(by) == names and by[bench.BASE][3] == "1.00" and float(by["moa 4xr8"][2]) > 0
        assert by["orchmoe 4xr4"][7] in ("yes", "NO") and by["moe_lora 4xr8"][7] == ""  # token routing: no target
        assert by["orchmoe 4xr4"][8] and by["moe_lora 4xr8"][8] == ""
        assert by["peft lora r32"][10] == "1.00" and int(by["orchmoe 4xr4"][9]) > 0
    assert re.match(r"# targets met: \d+ of 22$", lines[-3])
    assert re.match(r"# targets whose 95% CI contains the limit \(this run cannot decide them\): \d+, of them met: \d+$",
                    lines[-2])
    met = int(re.match(r"# targets met: (\d+)", lines[-3]).group(1))
    settled = re.match(r"# targets met, or undecided by the whole step and met by the adapted linears alone .*: (\d+) "
                       r"of 22$", lines[-1])
    assert settled and int(settled.group(1)) >= met
    text = docs.read_text()
    assert "old numbers" not in text and text.endswith("## Next section\nkept\n")
    assert "Command: `OMP_NUM_THREADS=" in text and "--quick" in text and lines[-1] in text


def test_left_padding_for_decoder_only_generation(bench):
    llama = bench.prompt_batch("llama", 4, 16, 100)["attention_mask"]
    t5 = bench.prompt_batch("t5", 4, 16, 100)["attention_mask"]
    assert (llama[:, -1] == 1).all() and llama[1:, 0].eq(0).all()  # left-padded: every row ends on a prompt token
    assert (t5[:, 0] == 1).all() and t5[1:, -1].eq(0).all()


def test_ratio_interval_brackets_the_ratio_of_medians(bench):
    times = {"a": [1.0, 1.1, 0.9, 1.05, 0.95, 1.0, 1.02], "b": [2.0, 2.1, 1.9, 2.0, 2.05, 1.95, 2.0]}
    lo, hi = bench.ratio_ci(times, "a", "b")
    assert lo <= 0.5 <= hi and hi - lo < 0.1
    lo, hi = bench.ratio_ci({"a": [1.0] * 5, "b": [1.0] * 5}, "a", "b")
    assert lo == hi == 1.0


def test_adapted_linears_decide_only_twin_targets_the_whole_step_cannot(bench):
    assert bench.settled({"method": "orchmoe 4xr4", "met": True, "undecided": False, "vs_twin": False})
    tie = {"method": "poly 4xr8", "met": False, "undecided": True, "vs_twin": True}
    assert bench.settled({**tie, "layers_below": True})
    assert not bench.settled({**tie, "layers_below": False})
    # not a twin target (run() gives it no layers_below): nothing decides it but the step
    assert not bench.settled({**tie, "method": "moe_lora 4xr8", "vs_twin": False})
    assert not bench.settled({**tie, "undecided": False, "layers_below": True})  # slower beyond noise: a miss

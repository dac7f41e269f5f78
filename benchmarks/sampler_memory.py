"""Peak memory of `orchmoe superni-sample` on synthetic Super-NI corpora of two sizes (issue 11, item 6).

Writes corpora of task files in the real schema (metadata first, then Instances) into a temporary folder, runs the
sampler in a fresh subprocess per corpus (english_only, so every file's metadata is read; all tasks seen, so every
file is read whole once) and prints its peak resident set size (ru_maxrss of the one child of a wrapper process).
The claim it checks: peak RSS <= 1 GB and not growing with corpus size.

    python benchmarks/sampler_memory.py --sizes-mb 200 1000
"""
from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TASK_MB = 4  # per task file; real Super-NI files range from a few KB to tens of MB


def write_corpus(folder: Path, size_mb: int, seed: int = 0) -> int:
    """Task files of ~TASK_MB each until the corpus holds size_mb; returns the number of files."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta", "lambda", "zeta"]
    folder.mkdir(parents=True)
    n_files, written = 0, 0
    while written < size_mb * 2**20:
        instances, size = [], 0
        while size < TASK_MB * 2**20:
            text = " ".join(rng.choice(words) for _ in range(60))
            inst = {"id": f"task{n_files:05d}-{len(instances)}", "input": text, "output": [text[:40]]}
            instances.append(inst)
            size += len(text) + 80
        task = {"Contributors": ["synthetic"], "Source": ["benchmark"], "Categories": ["Copy"],
                "Definition": [f"Repeat the first forty characters ({n_files})."],
                "Positive Examples": [{"input": "a b", "output": "a b"}], "Negative Examples": [],
                "Input_language": ["English"], "Output_language": ["English"], "Instruction_language": ["English"],
                "Instances": instances}
        path = folder / f"task{n_files:05d}_synthetic.json"
        path.write_text(json.dumps(task, indent=4))
        written += path.stat().st_size
        n_files += 1
    return n_files


def peak_rss_mb(cmd: list[str]) -> tuple[float, float]:
    """Run cmd under a fresh wrapper process and return the cmd's own peak RSS in MB and its wall seconds.

    The wrapper's RUSAGE_CHILDREN maximum covers exactly one child (the sampler), unlike this process's, which
    would carry the maximum of every earlier run. ru_maxrss is in KB on Linux."""
    wrapper = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
               "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    start = time.time()
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], check=True, capture_output=True, text=True).stdout
    return int(out.split()[-1]) / 1024, time.time() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes-mb", type=int, nargs="+", default=[200, 1000])
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--n-eval", type=int, default=100)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sorted(args.sizes_mb):
            corpus = Path(tmp) / f"corpus{size}"
            n_files = write_corpus(corpus / "tasks", size)
            corpus_mb = sum(p.stat().st_size for p in (corpus / "tasks").iterdir()) / 2**20
            cmd = [sys.executable, "-m", "orchmoe.cli", "superni-sample", "--tasks-dir", str(corpus / "tasks"),
                   "--out", str(corpus / "suite"), "--n-tasks", "all", "--n-train", str(args.n_train),
                   "--n-eval", str(args.n_eval), "--n-unseen", "0", "--english-only"]
            rss, secs = peak_rss_mb(cmd)
            rows.append((corpus_mb, n_files, rss, secs))
            print(f"corpus {corpus_mb:7.0f} MB ({n_files:4d} task files): sampler peak RSS {rss:6.0f} MB, "
                  f"{secs:5.0f} s", flush=True)
    ok = all(r[2] <= 1024 for r in rows) and rows[-1][2] <= rows[0][2] * 1.25
    print(f"peak RSS <= 1024 MB and flat in corpus size (largest <= 1.25 x smallest): {'yes' if ok else 'NO'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

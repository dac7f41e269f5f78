"""Render the recorded real run (work/engine-real, made by benchmarks/real_run.sh) as Markdown for docs/engine.md.

Usage: python benchmarks/render_real_run.py benchmarks/real_run.sh
"""
import csv
import json
import sys
from pathlib import Path

R = Path("work/engine-real")
out = []
script = Path(sys.argv[1]).read_text()
out.append("Commands (CPU, `OMP_NUM_THREADS=1`, on a 2-core machine shared with other jobs):\n")
out.append("```bash\n" + "\n".join(line for line in script.splitlines()[4:] if line.strip() and not line.startswith("echo")) + "\n```\n")
out.append("| method | trainable params | steps | s/step | final loss | EM | ROUGE-1 | ROUGE-L | ROUGE-Lsum | BLEU | perplexity | n eval |")
out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
for m in ("lora", "orchmoe"):
    ck, ev = R / f"ckpt-{m}", R / f"eval-{m}"
    if not (ev / "metrics.json").is_file():
        continue
    log = list(csv.DictReader(open(ck / "train_log.csv")))
    last = log[-1]
    spp = float(last["seconds"]) / int(last["step"])
    mm = json.loads((ev / "metrics.json").read_text())
    run = json.loads((ck / "run.json").read_text())
    from safetensors.torch import load_file
    n = sum(t.numel() for t in load_file(str(ck / "orchmoe_adapter.safetensors")).values())
    me = mm["mean"]
    out.append(f"| {m} | {n} | {last['step']} | {spp:.2f} | {float(last['loss']):.4f} | {me['exact_match']} | {me['rouge1']} | "
               f"{me['rougeL']} | {me['rougeLsum']} | {me['bleu']} | {me['perplexity']} | {mm['n']} |")
out.append("")
for m in ("lora", "orchmoe"):
    ev = R / f"eval-{m}"
    if (ev / "predictions.jsonl").is_file():
        rows = [json.loads(line) for line in open(ev / "predictions.jsonl")][:3]
        out.append(f"First predictions of `{m}` (generated, verbatim):\n")
        for r in rows:
            out.append(f"- `{r['task']}`: prediction {json.dumps(r['prediction'][:80], ensure_ascii=False)}, "
                       f"reference {json.dumps(r['references'][0][:80], ensure_ascii=False)}")
        out.append("")
ck = R / "ckpt-lora"
if (ck / "run.json").is_file():
    run = json.loads((ck / "run.json").read_text())
    out.append(f"Provenance: git {run['git']['commit']} (dirty={run['git']['dirty']}), torch {run['versions']['torch']}, "
               f"transformers {run['versions']['transformers']}, device {run['device']['device']}; base GGUF md5 "
               f"{run['inputs'].get('base', {}).get('md5')}.")
print("\n".join(out))

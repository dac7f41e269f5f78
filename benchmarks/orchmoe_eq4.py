"""OrchMoE eq. 4, affine as written or with a softmax over T: what each reading does at the start of training.

`python benchmarks/orchmoe_eq4.py` (about 2 minutes on 1 core) builds the demo's data (the built-in suite, 15 seen
tasks; config/demo.yaml's sizes and seeds), pretrains a tiny T5 on the primitive skills (config/demo.yaml's
tiny-t5, but `--pretrain-steps` steps instead of 1000; `--base models/demo/tiny-t5` uses the demo's own base
instead), attaches OrchMoE 4 x r4 on the demo's targets (q, k, v, o, wi_0, wi_1, wo; T = 15) and prints, for
`orchmoe_task_router: affine` and `softmax`:

1. at initialisation, on 30 eval prompts (2 per task): the range of alpha = w(X) W_hat over examples, skills and
   blocks, its sd across examples (min .. max over blocks), and the L2 norms of the gradients of the LM loss
   (those 30 examples, one batch) reaching W_Task (every block's task router, weight and bias) and W_Skill (the
   skill logits), in eval mode (sigmoid(W_Skill)) and train mode (one Gumbel sample per example). B is drawn from
   N(0, 0.02) first, as after a few steps: at B = 0 no router gets any gradient;
2. after `--steps` steps of the package's own `train` (demo recipe: lr 3e-3, router_lr 0.03, batch 16, seed 0):
   the Frobenius norm of the update of encoder block 0's q, scaling * sum_s alpha_s B_s A_s, averaged over the 30
   prompts, and the LM loss at steps 10 / 30 / 60, next to plain LoRA r16 at scaling 1 (alpha 16, the demo's LoRA)
   and at scaling 1/4 (alpha 4): the equal-parameter LoRA and the step size a uniform 1/4 per skill amounts to.

docs/methods.md (ambiguity 5 and "OrchMoE eq. 4: the two readings measured") quotes what this prints.
One seed: directions, not results to cite as a comparison of methods.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import logging
import tempfile
import time
from pathlib import Path

import torch

TARGETS = ["q", "k", "v", "o", "wi_0", "wi_1", "wo"]
PROBE = "base_model.encoder.block.0.layer.0.SelfAttention.q"  # the adapted linear whose update is measured


def build_data(root: Path, seed: int = 0) -> tuple[Path, Path]:
    """config/demo.yaml's built-in suite (15 seen tasks) and the primitive-skills split the tiny bases pretrain on."""
    from orchmoe.data.builtin import write_builtin_suite
    from orchmoe.data.superni import sample_superni

    write_builtin_suite(root / "raw", n_instances=136, n_primitive_instances=600, max_tasks=20, seed=seed)
    sample_superni(root / "raw" / "tasks", root / "suite", n_tasks=15, n_train=120, n_eval=16, n_unseen=4,
                   n_unseen_eval=16, seed=2)
    sample_superni(root / "raw" / "primitives" / "tasks", root / "primitives", n_tasks="all", n_train=100000,
                   n_eval=1, n_unseen=0, seed=seed)
    return root / "suite", root / "primitives"


def probe_records(suite: Path, per_task: int = 2) -> list[dict]:
    from orchmoe.io import read_jsonl

    seen, out = {}, []
    for r in read_jsonl(suite / "eval.jsonl"):
        if seen.get(r["task"], 0) < per_task:
            seen[r["task"]] = seen.get(r["task"], 0) + 1
            out.append(r)
    return out


def load_base(path: Path):
    from transformers import AutoModelForSeq2SeqLM

    return AutoModelForSeq2SeqLM.from_pretrained(path).eval()


def adapter(reading: str | None, **kw) -> dict:
    if reading is None:  # plain LoRA
        return {"method": "lora", "target_modules": TARGETS, **kw}
    return {"method": "orchmoe", "rank": 4, "n_skills": 4, "n_tasks": 15, "orchmoe_task_router": reading,
            "target_modules": TARGETS, **kw}


def _norm(params) -> float:
    return torch.sqrt(sum(p.grad.float().pow(2).sum() for p in params)).item()


def at_init(base_dir: Path, batch: dict, reading: str, seed: int = 0) -> dict:
    from orchmoe.adapters import attach_adapters

    torch.manual_seed(seed)
    model = attach_adapters(load_base(base_dir), adapter(reading))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("lora_B"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    routers = list(model.block_routers.values())
    out = {}
    for mode in ("eval", "train"):
        model.train(mode == "train")
        model.zero_grad()
        torch.manual_seed(seed)  # the Gumbel samples
        model(**batch).loss.backward()
        out[f"grad_task_{mode}"] = _norm([p for r in routers for p in r.task_router.parameters()])
        out[f"grad_skill_{mode}"] = _norm([r.skill_logits for r in routers])
        if mode == "eval":
            alpha = torch.stack([r["skill_weights"] for r in model.last_routing().values()])  # (blocks, N, S)
            out["alpha_min"], out["alpha_max"] = alpha.min().item(), alpha.max().item()
            sd = alpha.std(1, unbiased=False).mean(-1)  # per block: sd across examples, mean over skills
            out["alpha_sd_min"], out["alpha_sd_max"] = sd.min().item(), sd.max().item()
    return out


@torch.no_grad()
def update_norm(model, batch: dict) -> float:
    """Mean over the probe prompts of || scaling * sum_s alpha_s B_s A_s ||_F for the PROBE linear (eval routing)."""
    bank = model.get_submodule(PROBE).bank
    model.eval()
    if bank.n_skills == 1:
        return (bank.scaling * bank.lora_B[0] @ bank.lora_A[0]).norm().item()
    model(**batch)
    router = model.get_submodule(PROBE)._shared_router[0]
    alpha = model.last_routing()[router.name]["skill_weights"]  # (N, S)
    delta = torch.einsum("ns,sor,sri->noi", alpha, bank.lora_B, bank.lora_A) * bank.scaling
    return delta.flatten(1).norm(dim=1).mean().item()


def after_training(base_dir: Path, suite: Path, batch: dict, cfg: dict, steps: int, work: Path) -> dict:
    from orchmoe.adapters import AdapterConfig
    from orchmoe.models.tiny import byte_tokenizer
    from orchmoe.training.trainer import TrainConfig, train

    train_cfg = TrainConfig(lr=3e-3, router_lr=0.03, batch_size=16, max_steps=steps, max_source_length=96,
                            max_target_length=16, save_every=10 * steps, log_every=10)
    with contextlib.redirect_stderr(io.StringIO()):  # the progress bar
        model = train(load_base(base_dir), byte_tokenizer(), suite, AdapterConfig.from_dict(cfg), train_cfg, seed=0,
                      work_dir=work)
    loss = {row["step"]: row["lm_loss"] for row in model.train_log}
    return {"update": update_norm(model, batch), "loss": [loss.get(s) for s in (10, 30, 60) if s <= steps]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", type=Path, help="a pretrained tiny-t5 folder (e.g. models/demo/tiny-t5); default: "
                                              "pretrain one here for --pretrain-steps steps")
    p.add_argument("--pretrain-steps", type=int, default=300)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    logging.disable(logging.WARNING)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" at every load of the base
    start = time.time()
    from orchmoe.data.batching import make_collator
    from orchmoe.models.pretrain import pretrain_tiny
    from orchmoe.models.tiny import byte_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        suite, primitives = build_data(tmp)
        base = a.base
        if base is None:
            with contextlib.redirect_stderr(io.StringIO()):
                base = pretrain_tiny("t5", primitives, tmp / "tiny-t5", steps=a.pretrain_steps, batch_size=32,
                                     lr=1e-3, seed=0, d_model=128, n_layers=2, n_heads=4, d_ff=256)
            print(f"(pretrained in {time.time() - start:.0f} s)")
        records = probe_records(suite)
        batch = make_collator(byte_tokenizer(), True, 96, 16, "train")(records)
        print(f"base: {'pretrained here, ' + str(a.pretrain_steps) + ' steps' if a.base is None else a.base}; "
              f"{len(records)} probe prompts; OrchMoE 4 x r4 on {', '.join(TARGETS)}, T = 15")
        print("\n## At initialisation (B ~ N(0, 0.02))")
        print("| reading | alpha over examples, skills, blocks | sd across examples (per block) "
              "| grad W_Task (eval / train) | grad W_Skill (eval / train) |")
        print("|---|---|---|---|---|")
        for reading in ("softmax", "affine"):
            r = at_init(base, batch, reading)
            print(f"| {reading} | {r['alpha_min']:.3f} .. {r['alpha_max']:.3f} | "
                  f"{r['alpha_sd_min']:.4f} .. {r['alpha_sd_max']:.4f} | "
                  f"{r['grad_task_eval']:.2g} / {r['grad_task_train']:.2g} | "
                  f"{r['grad_skill_eval']:.2g} / {r['grad_skill_train']:.2g} |")
        print(f"\n## After {a.steps} steps (lr 3e-3, router_lr 0.03, batch 16, seed 0)")
        print("| run | norm of the update of encoder block 0's q | LM loss at steps 10 / 30 / 60 |")
        print("|---|---|---|")
        runs = {"LoRA r16, scaling 1 (alpha 16)": adapter(None, rank=16, alpha=16.0),
                "LoRA r16, scaling 1/4 (alpha 4)": adapter(None, rank=16, alpha=4.0),
                "OrchMoE 4 x r4, softmax": adapter("softmax"),
                "OrchMoE 4 x r4, affine (eq. 4 as written)": adapter("affine")}
        for i, (name, cfg) in enumerate(runs.items()):
            r = after_training(base, suite, batch, cfg, a.steps, tmp / f"run{i}")
            print(f"| {name} | {r['update']:.3f} | {' / '.join(f'{x:.3f}' for x in r['loss'])} |")
    print(f"\n({time.time() - start:.0f} s wall, {time.process_time():.0f} s CPU, {a.threads} thread(s))")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

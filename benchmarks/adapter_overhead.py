"""Adapter overhead: one training step and greedy decoding, each method as a ratio to LoRA r=32 in the same run.

Issue 2, section 4: a small T5 (d_model 512) and a small Llama, batch 4 x 256 tokens, median over repeated runs of
one forward + backward + AdamW step, for the frozen base and the paper's equal-parameter settings (LoRA r=32,
MoE-LoRA / Poly / MHR 4 x r8, OrchMoE 4 x r4) on q, k, v. Then greedy decoding of 64 new tokens, OrchMoE vs LoRA.
Targets: every method <= 1.10x LoRA r=32 per step, OrchMoE decoding <= 1.05x LoRA.

    python benchmarks/adapter_overhead.py [--repeats 5] [--layers 4] [--threads 2]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM, T5Config, T5ForConditionalGeneration

from orchmoe.adapters import attach_adapters

N_TASKS = 10
METHODS = {  # the paper's equal-parameter settings (OrchMoE section 4.2)
    "lora r32": {"method": "lora", "rank": 32},
    "moe_lora 4xr8": {"method": "moe_lora", "rank": 8, "n_skills": 4},
    "poly 4xr8": {"method": "poly", "rank": 8, "n_skills": 4, "n_tasks": N_TASKS},
    "mhr 4xr8": {"method": "mhr", "rank": 8, "n_skills": 4, "n_tasks": N_TASKS, "n_splits": 8},
    "orchmoe 4xr4": {"method": "orchmoe", "rank": 4, "n_skills": 4, "n_tasks": N_TASKS},
}
TARGETS = {"t5": ["q", "k", "v"], "llama": ["q_proj", "k_proj", "v_proj"]}


def build(arch: str, layers: int, seed: int = 0):
    torch.manual_seed(seed)
    if arch == "t5":  # t5-small's widths
        cfg = T5Config(vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=layers,
                       num_decoder_layers=layers, num_heads=8, feed_forward_proj="relu", dropout_rate=0.0,
                       decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
        return T5ForConditionalGeneration(cfg)
    cfg = LlamaConfig(vocab_size=32000, hidden_size=512, intermediate_size=1376, num_hidden_layers=layers,
                      num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=1024,
                      pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return LlamaForCausalLM(cfg)


def batch(arch: str, B: int, L: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 30000, (B, L), generator=g)
    out = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "task_ids": torch.arange(B) % N_TASKS}
    if arch == "t5":
        out["labels"] = torch.randint(3, 30000, (B, L), generator=g)
    else:
        out["labels"] = ids.clone()
        out["prompt_mask"] = torch.ones_like(ids)
        out["prompt_mask"][:, L // 2:] = 0  # first half prompt, second half target (the router reads the prompt)
    return out


def make_step(arch, layers, method_cfg, x):
    """One training step of a freshly built model, as a closure (the frozen base: forward only)."""
    base = build(arch, layers)
    if method_cfg is None:  # no adapters: nothing to train, so no backward and no optimiser step
        for p in base.parameters():
            p.requires_grad_(False)
        inputs = {k: v for k, v in x.items() if k not in ("task_ids", "prompt_mask")}

        def forward_only():
            with torch.no_grad():
                base(**inputs)
        return forward_only
    model = attach_adapters(base, {**method_cfg, "target_modules": TARGETS[arch]}).train()
    opt = torch.optim.AdamW(model.param_groups(lr=1e-4, router_lr=1e-3))

    def step():
        loss = model(**x).loss + model.routing_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def interleaved_medians(fns: dict, repeats: int) -> dict:
    """Median seconds per function, measured round-robin so that load from other processes hits all alike."""
    for fn in fns.values():  # warm-up
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def make_decode(arch, layers, method_cfg, B, L, new_tokens):
    model = attach_adapters(build(arch, layers), {**method_cfg, "target_modules": TARGETS[arch]}).eval()
    x = batch(arch, B, L)
    kw = dict(input_ids=x["input_ids"], attention_mask=x["attention_mask"], task_ids=x["task_ids"],
              max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, num_beams=1)
    return lambda: model.generate(**kw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--length", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4, help="blocks (T5: encoder and decoder each)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--decode-prompt", type=int, default=64, help="prompt length for the decoding benchmark")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--archs", default="t5,llama")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
          f"; batch {args.batch} x {args.length} tokens, {args.layers} layers, d_model 512, median of "
          f"{args.repeats} interleaved runs (after 1 warm-up)")
    for arch in args.archs.split(","):
        x = batch(arch, args.batch, args.length)
        steps = {"base (frozen, forward only)": make_step(arch, args.layers, None, x)}
        steps.update({name: make_step(arch, args.layers, cfg, x) for name, cfg in METHODS.items()})
        times = interleaved_medians(steps, args.repeats)
        del steps
        ref = times["lora r32"]
        print(f"\n{arch}: one forward + backward + AdamW step")
        print("| method | seconds | x LoRA r=32 | target |")
        print("|---|---|---|---|")
        for name, t in times.items():
            target = "" if name.startswith("base") else ("<= 1.10" if name != "lora r32" else "1.00")
            print(f"| {name} | {t:.3f} | {t / ref:.2f} | {target} |")
        decode = interleaved_medians({name: make_decode(arch, args.layers, METHODS[name], args.batch,
                                                        args.decode_prompt, args.new_tokens)
                                      for name in ("lora r32", "orchmoe 4xr4")}, args.repeats)
        lora, orch = decode["lora r32"], decode["orchmoe 4xr4"]
        print(f"\n{arch}: greedy decoding of {args.new_tokens} new tokens (batch {args.batch}, prompt "
              f"{args.decode_prompt}, KV cache)")
        print("| method | seconds | x LoRA r=32 | target |")
        print("|---|---|---|---|")
        print(f"| lora r32 | {lora:.3f} | 1.00 | |")
        print(f"| orchmoe 4xr4 | {orch:.3f} | {orch / lora:.2f} | <= 1.05 |")


if __name__ == "__main__":
    main()

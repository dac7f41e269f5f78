"""Adapter overhead side by side with PEFT: training steps and generation throughput, in one interleaved loop.

Issue 15. A small T5 and a small Llama (4 blocks, d_model 512), q, k, v adapted, at the paper's equal-parameter
settings: LoRA r32; Poly / MHR (8 heads) / MoE-LoRA / MoA 4 x r8; OrchMoE 4 x r4. PEFT's LoRA, Poly and MHR (its
Poly with n_splits) run in the same loop as ours. Paper-like shapes: T5 reads a long source and writes a short
target; Llama trains on prompt + target with the loss on the target and the routers reading the prompt only.

1. Training: median seconds of one forward + backward + AdamW step, as ratios to PEFT LoRA r32 and to the method's
   PEFT twin. Targets: our LoRA <= 1.00x PEFT LoRA; our Poly / MHR <= their PEFT twins; OrchMoE, MoE-LoRA and
   MoA <= 1.10x PEFT LoRA r32.
2. Generation: greedy decoding with a KV cache of a left-padded batch (decoder-only pads on the left) from the same
   prompts; generated tokens per second vs the frozen base and PEFT LoRA. Target: methods with cached
   (per-sequence) routing <= 1.05x PEFT LoRA's time.

3. The adapted linears alone: forward + backward of every adapted q/k/v linear of the model on one input, ours beside
   PEFT's for the three methods PEFT implements too. In a whole Llama step the adapted linears (base products
   included) are about a tenth of the time (the LM head over 32k tokens is the largest item), so a real difference
   between two implementations of the same maths shrinks to about the step's noise (~1%); here it is the whole
   measurement. A twin target (ours <= the PEFT implementation of the same maths) that the whole step cannot decide
   (its 95% interval contains the limit) is decided here: met when this interval lies below the limit. The last
   output line applies that rule.

Load-independent columns next to the timings: GFLOP of one training step (matrix products, forward + backward,
counted by torch's FlopCounterMode) and the number of aten ops of one generate call (per-call overhead: hooks,
routing, reshapes), each also as a ratio to PEFT LoRA r32.

Every configuration is timed round-robin in the same loop (median of --repeats after one warm-up), so load from
other processes hits all alike. `/proc/loadavg` is printed before and after.

    OMP_NUM_THREADS=2 python benchmarks/adapter_overhead.py [--repeats 7] [--threads 2] [--update-docs docs/methods.md]
    python benchmarks/adapter_overhead.py --quick     # tiny models, seconds: checks that everything runs
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import re
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils import flop_counter
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode
from transformers import LlamaConfig, LlamaForCausalLM, T5Config, T5ForConditionalGeneration

from orchmoe.adapters import attach_adapters

N_TASKS = 10
TARGETS = {"t5": ["q", "k", "v"], "llama": ["q_proj", "k_proj", "v_proj"]}
# name -> (our adapter config or None, PEFT config kwargs or None, the PEFT twin's name, training target)
# Targets: ("peft", x) = at most x times PEFT LoRA r32; ("twin", x) = at most x times the method's PEFT twin.
OURS = {
    "lora r32": ({"method": "lora", "rank": 32}, "peft lora r32", ("peft", 1.00)),
    "poly 4xr8": ({"method": "poly", "rank": 8, "n_skills": 4, "n_tasks": N_TASKS}, "peft poly 4xr8", ("twin", 1.00)),
    "mhr 4xr8": ({"method": "mhr", "rank": 8, "n_skills": 4, "n_tasks": N_TASKS, "n_splits": 8}, "peft mhr 4xr8",
                 ("twin", 1.00)),
    "moe_lora 4xr8": ({"method": "moe_lora", "rank": 8, "n_skills": 4}, None, ("peft", 1.10)),
    "orchmoe 4xr4": ({"method": "orchmoe", "rank": 4, "n_skills": 4, "n_tasks": N_TASKS}, None, ("peft", 1.10)),
    # MoA's paper gives MoA the same LoRA bank as its MoE-LoRA baseline, so here the same 4 x r8 as MoE-LoRA.
    "moa 4xr8": ({"method": "moa", "rank": 8, "n_skills": 4}, None, ("peft", 1.10)),
}
PEFT = {
    "peft lora r32": ("lora", {"r": 32, "lora_alpha": 32, "lora_dropout": 0.0}),
    "peft poly 4xr8": ("poly", {"r": 8, "n_skills": 4, "n_splits": 1, "n_tasks": N_TASKS}),
    "peft mhr 4xr8": ("poly", {"r": 8, "n_skills": 4, "n_splits": 8, "n_tasks": N_TASKS}),
}
# Decoding target: methods whose routing is computed once per sequence and reused at every decoding step.
CACHED_ROUTING = {"lora r32", "poly 4xr8", "mhr 4xr8", "orchmoe 4xr4", "moa 4xr8"}
DECODE_TARGET = 1.05
BASE = "base (frozen)"

SIZES = {  # the full benchmark and the seconds-long smoke run of --quick (same code paths, tiny widths)
    "full": {"d_model": 512, "heads": 8, "d_ff": 2048, "llama_ff": 1376, "vocab": 32000},
    "quick": {"d_model": 64, "heads": 4, "d_ff": 128, "llama_ff": 128, "vocab": 500},
}


def build(arch: str, layers: int, size: dict, seed: int = 0):
    torch.manual_seed(seed)  # every configuration adapts the same base weights
    d, h = size["d_model"], size["heads"]
    if arch == "t5":  # t5-small's widths
        cfg = T5Config(vocab_size=size["vocab"], d_model=d, d_kv=d // h, d_ff=size["d_ff"], num_layers=layers,
                       num_decoder_layers=layers, num_heads=h, feed_forward_proj="relu", dropout_rate=0.0,
                       decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
        return T5ForConditionalGeneration(cfg)
    cfg = LlamaConfig(vocab_size=size["vocab"], hidden_size=d, intermediate_size=size["llama_ff"],
                      num_hidden_layers=layers, num_attention_heads=h, num_key_value_heads=h,
                      max_position_embeddings=2048, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return LlamaForCausalLM(cfg)


def train_batch(arch: str, B: int, source: int, target: int, vocab: int, seed: int = 0) -> dict:
    """T5: `source` input tokens, `target` label tokens. Llama: prompt (`source`) + target tokens in one sequence,
    loss on the target only, the prompt mask marking the prompt for the routers."""
    g = torch.Generator().manual_seed(seed)
    routing = {"task_ids": torch.arange(B) % N_TASKS, "domain_ids": torch.arange(B) % 4}
    if arch == "t5":
        ids = torch.randint(3, vocab, (B, source), generator=g)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
                "labels": torch.randint(3, vocab, (B, target), generator=g), **routing}
    ids = torch.randint(3, vocab, (B, source + target), generator=g)
    labels = ids.clone()
    labels[:, :source] = -100
    prompt_mask = torch.zeros_like(ids)
    prompt_mask[:, :source] = 1
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels, "prompt_mask": prompt_mask,
            **routing}


def prompt_batch(arch: str, B: int, length: int, vocab: int, seed: int = 1) -> dict:
    """Prompts of different lengths (length, 7/8 length, ...) padded with the pad id 0 to `length`: on the left for
    decoder-only generation (new tokens follow the last prompt token), on the right for T5's encoder."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (B, length), generator=g)
    mask = torch.ones_like(ids)
    for i in range(B):
        pad = slice(0, (i % 4) * length // 8) if arch != "t5" else slice(length - (i % 4) * length // 8, length)
        ids[i, pad], mask[i, pad] = 0, 0
    return {"input_ids": ids, "attention_mask": mask, "task_ids": torch.arange(B) % N_TASKS,
            "domain_ids": torch.arange(B) % 4}


def peft_model(arch: str, base, name: str):
    import peft

    kind, kw = PEFT[name]
    task_type = "SEQ_2_SEQ_LM" if arch == "t5" else "CAUSAL_LM"
    cfg = (peft.LoraConfig if kind == "lora" else peft.PolyConfig)(task_type=task_type, target_modules=TARGETS[arch],
                                                                  **kw)
    return peft.get_peft_model(base, cfg)


def make_model(arch: str, name: str, layers: int, size: dict):
    base = build(arch, layers, size)
    if name == BASE:
        base.requires_grad_(False)
        return base, "base"
    if name in PEFT:
        return peft_model(arch, base, name), PEFT[name][0]
    return attach_adapters(base, {**OURS[name][0], "target_modules": TARGETS[arch]}), "ours"


def model_inputs(kind: str, x: dict) -> dict:
    """What each model takes: PEFT's Poly routes by task id only; LoRA and the bare base take no routing inputs."""
    drop = {"base": ("task_ids", "domain_ids", "prompt_mask"), "lora": ("task_ids", "domain_ids", "prompt_mask"),
            "poly": ("domain_ids", "prompt_mask"), "ours": ()}[kind]
    return {k: v for k, v in x.items() if k not in drop}


def make_step(arch: str, name: str, layers: int, size: dict, x: dict):
    """One training step of a freshly built model, as a closure (the frozen base: forward only, no gradients)."""
    model, kind = make_model(arch, name, layers, size)
    inputs = model_inputs(kind, x)
    if kind == "base":
        def forward_only():
            with torch.no_grad():
                model(**inputs)
        return forward_only
    model.train()
    if kind == "ours":
        groups = model.param_groups(lr=1e-4, router_lr=1e-3)
    else:  # the same two groups as ours: adapters with weight decay, routers (PEFT Poly's module_logits) without
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        groups = [{"params": [p for n, p in named if "router" not in n], "lr": 1e-4, "weight_decay": 0.01},
                  {"params": [p for n, p in named if "router" in n], "lr": 1e-3, "weight_decay": 0.0}]
        groups = [g for g in groups if g["params"]]
    opt = torch.optim.AdamW(groups)

    def step():
        out = model(**inputs)
        loss = out.loss + model.routing_loss() if kind == "ours" else out.loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def make_decode(arch: str, name: str, layers: int, size: dict, x: dict, new_tokens: int):
    model, kind = make_model(arch, name, layers, size)
    model.eval()
    kw = dict(model_inputs(kind, x), max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
              num_beams=1, pad_token_id=0)
    gen = model.generate

    def decode():
        with torch.no_grad():
            out = gen(**kw)
        n = out.shape[1] - (0 if arch == "t5" else x["input_ids"].shape[1]) - (1 if arch == "t5" else 0)
        assert n == new_tokens, (name, out.shape)  # T5 output starts with the decoder start token
    return decode


def make_layers(arch: str, name: str, layers: int, size: dict, x: torch.Tensor, task_ids: torch.Tensor):
    """Forward + backward of the model's adapted linears alone, each on the same input x (B, L, d_model): the code in
    which our LoRA / Poly / MHR and PEFT's differ, without the rest of the step that both share."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    from orchmoe.adapters.layer import AdaptedLinear

    model, kind = make_model(arch, name, layers, size)
    model.train()
    if kind == "ours":
        adapted = [m for m in model.modules() if isinstance(m, AdaptedLinear)]
        routing, kw = (lambda: model.routing(task_ids=task_ids)), {}
    else:  # PEFT's Poly layers take the task ids as an argument (its model passes them in with hooks)
        adapted = [m for m in model.modules() if isinstance(m, BaseTunerLayer)]
        routing, kw = contextlib.nullcontext, ({"task_ids": task_ids} if kind == "poly" else {})
    x = x.detach().requires_grad_(True)  # as inside the model: the input carries the adapters below it

    def layers_step():
        model.zero_grad(set_to_none=True)
        x.grad = None
        with routing():
            outs = [m(x, **kw) for m in adapted]
        torch.autograd.backward(outs, [torch.ones_like(o) for o in outs])
    layers_step.n_adapted = len(adapted)
    return layers_step


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def interleaved_times(fns: dict, repeats: int, clock: str = "wall") -> dict:
    """Seconds of every call per function, measured in rounds (each function once per round, in a shuffled order)
    so that load from other processes hits all alike.

    clock "cpu" counts this process's CPU seconds (all its threads) instead of wall seconds: on a machine shared
    with other jobs it does not count the time the scheduler gives to them."""
    now = CLOCKS[clock]
    for fn in fns.values():  # warm-up
        fn()
    times = {name: [] for name in fns}
    order = list(fns)
    rng = random.Random(0)
    for _ in range(repeats):
        # a new order every round: no configuration always runs right after the same other one (the allocator's and
        # caches' state a step inherits depends on the step before it)
        rng.shuffle(order)
        for name in order:
            t0 = now()
            fns[name]()
            times[name].append(now() - t0)
    return times


def ratio_ci(times: dict, name: str, ref: str, n_boot: int = 2000) -> tuple[float, float]:
    """95% bootstrap interval of median(name) / median(ref), resampling whole rounds (the two calls of a round shared
    the machine's state). Two identical configurations differ by about 1% on a quiet 2-core machine: an interval
    that contains the target means this run cannot tell whether the target is met."""
    a, b = times[name], times[ref]
    rng = random.Random(0)
    n = len(a)
    boots = []
    for _ in range(n_boot):
        idx = [rng.randrange(n) for _ in range(n)]
        boots.append(statistics.median(a[i] for i in idx) / statistics.median(b[i] for i in idx))
    boots.sort()
    return boots[int(0.025 * n_boot)], boots[int(0.975 * n_boot) - 1]


class _OpCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.n += 1
        return func(*args, **(kwargs or {}))


# torch's counter knows addmm / baddbmm but not their in-place forms, which the fused base + update node
# (orchmoe.adapters.fused_update) accumulates with: the same products, counted alike.
IN_PLACE_PRODUCTS = {torch.ops.aten.addmm_: lambda c, a, b, out_shape=None, **kw: flop_counter.mm_flop(a, b),
                     torch.ops.aten.baddbmm_: lambda c, a, b, out_shape=None, **kw: flop_counter.bmm_flop(a, b)}


def counts(fns: dict) -> dict:
    """name -> (multiply-add FLOPs, aten ops) of one more call: the work itself, independent of the machine's load."""
    out = {}
    for name, fn in fns.items():
        with FlopCounterMode(display=False, custom_mapping=IN_PLACE_PRODUCTS) as flops, _OpCounter() as ops:
            fn()
        out[name] = (flops.get_total_flops(), ops.n)
    return out


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def met(ratio: float, limit: float) -> str:
    return "yes" if ratio <= limit + 1e-9 else "NO"


def training_table(runs: dict, work: dict) -> tuple[list[str], list[dict]]:
    """The table rows and, per target, whether it is met and whether its 95% interval contains the limit."""
    times = {name: statistics.median(t) for name, t in runs.items()}
    ref, ref_flops = times["peft lora r32"], work["peft lora r32"][0]
    rows = ["| method | seconds | x PEFT LoRA r32 | x PEFT twin | target | met | 95% CI | GFLOP | FLOP x PEFT LoRA |",
            "|---|---|---|---|---|---|---|---|---|"]
    verdicts = []
    for name, t in times.items():
        twin = OURS[name][1] if name in OURS else None
        twin_ratio = f"{t / times[twin]:.2f}" if twin else ""
        target = verdict = interval = ""
        if name in OURS:
            kind, limit = OURS[name][2]
            against = twin if kind == "twin" else "peft lora r32"
            target = f"<= {limit:.2f}x {'PEFT twin' if kind == 'twin' else 'PEFT LoRA'}"
            verdict = met(t / times[against], limit)
            lo, hi = ratio_ci(runs, name, against)
            interval = f"{lo:.3f}-{hi:.3f}"
            verdicts.append({"method": name, "met": verdict == "yes", "undecided": lo <= limit <= hi,
                             "limit": limit, "vs_twin": twin == against})
        rows.append(f"| {name} | {t:.3f} | {t / ref:.2f} | {twin_ratio} | {target} | {verdict} | {interval} | "
                    f"{work[name][0] / 1e9:.2f} | {work[name][0] / ref_flops:.3f} |")
    return rows, verdicts


def decode_table(runs: dict, tokens: int, work: dict) -> tuple[list[str], list[dict]]:
    times = {name: statistics.median(t) for name, t in runs.items()}
    ref, base, ref_ops = times["peft lora r32"], times[BASE], work["peft lora r32"][1]
    rows = ["| method | seconds | tokens/s | x base | x PEFT LoRA r32 | x PEFT twin | target | met | 95% CI | aten ops | "
            "ops x PEFT LoRA |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    verdicts = []
    for name, t in times.items():
        twin = OURS[name][1] if name in OURS else None
        target = verdict = interval = ""
        if name in CACHED_ROUTING:
            target, verdict = f"<= {DECODE_TARGET:.2f}x PEFT LoRA", met(t / ref, DECODE_TARGET)
            lo, hi = ratio_ci(runs, name, "peft lora r32")
            interval = f"{lo:.3f}-{hi:.3f}"
            verdicts.append({"method": name, "met": verdict == "yes", "undecided": lo <= DECODE_TARGET <= hi,
                             "limit": DECODE_TARGET, "vs_twin": False})
        rows.append(f"| {name} | {t:.3f} | {tokens / t:.1f} | {t / base:.2f} | {t / ref:.2f} | "
                    f"{f'{t / times[twin]:.2f}' if twin else ''} | {target} | {verdict} | {interval} | "
                    f"{work[name][1]} | {work[name][1] / ref_ops:.2f} |")
    return rows, verdicts


def settled(verdict: dict) -> bool:
    """Met at the whole step; or a twin target the step cannot decide whose adapted linears alone are below the limit
    beyond their noise. A step that is slower beyond its noise is a miss whatever the adapted linears say: then
    something else in our step costs."""
    return verdict["met"] or (verdict["undecided"] and verdict.get("layers_below", False))


def layers_table(runs: dict, work: dict) -> tuple[list[str], dict]:
    """Rows of the adapted-linears comparison and, per method of ours, the 95% interval of its ratio to its twin."""
    times = {name: statistics.median(t) for name, t in runs.items()}
    rows = ["| method | ms | x PEFT twin | 95% CI | GFLOP | aten ops | ops x PEFT twin |",
            "|---|---|---|---|---|---|---|"]
    intervals = {}
    for name, t in times.items():
        twin = OURS[name][1] if name in OURS else None
        ratio = interval = ops_ratio = ""
        if twin:
            intervals[name] = ratio_ci(runs, name, twin)
            ratio, interval = f"{t / times[twin]:.2f}", "{:.3f}-{:.3f}".format(*intervals[name])
            ops_ratio = f"{work[name][1] / work[twin][1]:.2f}"
        rows.append(f"| {name} | {t * 1e3:.1f} | {ratio} | {interval} | {work[name][0] / 1e9:.2f} | {work[name][1]} | "
                    f"{ops_ratio} |")
    return rows, intervals


def run(args) -> list[str]:
    size = SIZES["quick" if args.quick else "full"]
    lines = []

    def say(s=""):
        print(s, flush=True)
        lines.append(s)

    import peft
    import transformers

    say(f"# torch {torch.__version__}, peft {peft.__version__}, transformers {transformers.__version__}, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
        f", {os.cpu_count()} CPUs; {args.layers} blocks, d_model {size['d_model']}, q/k/v adapted; median of "
        f"{args.repeats} interleaved rounds (order shuffled each round) after 1 warm-up, {args.clock} clock")
    say(f"# load before (/proc/loadavg 1/5/15 min): {loadavg()}")
    names = [BASE, *PEFT, *OURS]
    all_met = []
    for arch in args.archs.split(","):
        x = train_batch(arch, args.batch, args.source, args.target, size["vocab"])
        steps = {name: make_step(arch, name, args.layers, size, x) for name in names}
        times = interleaved_times(steps, args.repeats, args.clock)
        work = counts(steps)
        del steps
        shape = (f"source {args.source} -> target {args.target} tokens" if arch == "t5" else
                 f"prompt {args.source} + target {args.target} tokens, loss on the target, routers read the prompt")
        say(f"\n{arch}: one training step (forward + backward + AdamW; the base: forward only), batch {args.batch}, "
            f"{shape}")
        rows, verdicts = training_table(times, work)
        for r in rows:
            say(r)
        all_met += verdicts
        seq = args.source + (args.target if arch != "t5" else 0)
        layer_input = torch.randn(args.batch, seq, size["d_model"], generator=torch.Generator().manual_seed(2))
        twins = [*PEFT, *(name for name in OURS if OURS[name][1])]
        layer_fns = {name: make_layers(arch, name, args.layers, size, layer_input, x["task_ids"]) for name in twins}
        times = interleaved_times(layer_fns, args.repeats, args.clock)
        n_adapted = layer_fns[twins[0]].n_adapted
        work = counts(layer_fns)
        del layer_fns
        say(f"\n{arch}: the {n_adapted} adapted q/k/v linears alone, forward + backward (no optimizer), each on the "
            f"same input of batch {args.batch} x {seq} tokens")
        rows, intervals = layers_table(times, work)
        for r in rows:
            say(r)
        for v in verdicts:  # a twin target the whole step cannot decide is decided by the adapted linears alone
            if v["vs_twin"]:
                v["layers_below"] = intervals[v["method"]][1] < v["limit"]
        p = prompt_batch(arch, args.batch, args.prompt, size["vocab"])
        decodes = {name: make_decode(arch, name, args.layers, size, p, args.new_tokens) for name in names}
        times = interleaved_times(decodes, args.repeats, args.clock)
        work = counts(decodes)
        del decodes
        say(f"\n{arch}: greedy generation of {args.new_tokens} new tokens, batch {args.batch}, prompts of "
            f"{args.prompt} tokens or fewer ({'padded' if arch == 't5' else 'left-padded'}), KV cache, prefill "
            f"included; tokens/s = generated tokens of the batch per second")
        rows, verdicts = decode_table(times, args.batch * args.new_tokens, work)
        for r in rows:
            say(r)
        all_met += verdicts
    say(f"\n# load after (/proc/loadavg 1/5/15 min): {loadavg()}")
    say(f"# targets met: {sum(v['met'] for v in all_met)} of {len(all_met)}")
    undecided = [v for v in all_met if v["undecided"]]
    say(f"# targets whose 95% CI contains the limit (this run cannot decide them): {len(undecided)}, of them met: "
        f"{sum(v['met'] for v in undecided)}")
    say(f"# targets met, or undecided by the whole step and met by the adapted linears alone (twin targets, 95% CI "
        f"below the limit): {sum(map(settled, all_met))} of {len(all_met)}")
    return lines


DOCS_HEADING = "## Benchmark: adapter overhead side by side with PEFT (generated output)"


def update_docs(path: Path, lines: list[str], argv: list[str]) -> None:
    """Replace the benchmark section of docs/methods.md (up to the next '## ' heading) with this run's output."""
    from orchmoe.io import atomic_path

    text = path.read_text()
    start = re.search(r"^## Benchmark: adapter overhead.*$", text, flags=re.M)
    if start is None:
        sys.exit(f"{path}: no '## Benchmark: adapter overhead' heading to replace")
    nxt = re.search(r"^## ", text[start.end():], flags=re.M)
    end = start.end() + nxt.start() if nxt else len(text)
    cmd = f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')} python benchmarks/adapter_overhead.py " \
          + " ".join(argv)
    section = "\n".join([
        DOCS_HEADING, "",
        "Written by the benchmark itself (`--update-docs`), unedited. Machine: "
        f"{platform.machine()} Linux, {os.cpu_count()} CPUs, CPU only, torch {torch.__version__}; run on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. The load before and after is in the output: a load "
        "above the core count means other jobs shared the cores and the ratios are noisy (interleaving makes the "
        "load hit every configuration alike, but not equally at every moment).", "",
        f"Command: `{cmd}`", "", "```", *lines, "```", "",
        "How to read it. Each table is one interleaved loop: the frozen base, PEFT's LoRA r32, PEFT's Poly 4 x r8 and "
        "PEFT's Poly with 8 splits (= MHR) beside our six methods, every model built from the same base weights, "
        "trained with AdamW in the same two groups (adapters with weight decay, routers without). `x PEFT twin` "
        "compares our LoRA / Poly / MHR with the PEFT implementation of the same maths. GFLOP (matrix products of "
        "one step, forward + backward) and aten ops (of one generate call) are counted, not timed, so they do not "
        "depend on the load: they show the work each implementation does. MoA uses the same 4 x r8 bank "
        "as MoE-LoRA (its paper gives both the same LoRAs). The generation target applies to the methods whose "
        "routing is computed once per sequence and reused at every step (LoRA, Poly, MHR, OrchMoE, MoA); MoE-LoRA "
        "routes every token at every step and is reported without a target. `95% CI` is a bootstrap interval of the "
        "ratio the target is judged on (resampling whole rounds of the loop): two identical configurations differ by "
        "about 1% between runs on a quiet 2-core machine, so where the interval contains the limit this run cannot "
        "decide the target either way (the output's second-to-last line counts those). The tables of 'the adapted "
        "q/k/v linears alone' time only the code in which our LoRA / Poly / MHR and PEFT's differ (forward + backward"
        " of every adapted linear on one input; PEFT's Poly layers get the task ids as an argument, without the hooks"
        " its model uses to pass them, ours run inside their routing context): in a whole Llama step the adapted "
        "linears (base products included) are about a tenth of the time, so a real difference between the two "
        "implementations of the same maths shrinks to about the step's noise. The last line judges each target as met"
        " at the whole step or, for a twin target that the step cannot decide, by the adapted linears (met when their"
        " 95% interval lies below the limit); a step slower beyond its noise stays a miss. A `NO` under a load far "
        "above the core count is not a verdict: rerun on a quiet machine (`--clock cpu` counts this process's CPU "
        "seconds only, which is less sensitive to other jobs).", "", ""])
    with atomic_path(path) as tmp:
        tmp.write_text(text[:start.start()] + section + text[end:])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--source", type=int, default=256, help="T5 source / Llama prompt tokens in training")
    ap.add_argument("--target", type=int, default=64, help="target tokens in training")
    ap.add_argument("--layers", type=int, default=4, help="blocks (T5: encoder and decoder each)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--prompt", type=int, default=128, help="longest prompt in the generation benchmark")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--archs", default="t5,llama")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                    help="wall seconds, or this process's CPU seconds (less sensitive to other jobs on the machine)")
    ap.add_argument("--quick", action="store_true",
                    help="tiny models and shapes, 1 repeat: a seconds-long check that every path runs")
    ap.add_argument("--update-docs", type=Path, default=None, metavar="METHODS_MD",
                    help="replace the benchmark section of this file (docs/methods.md) with the output")
    args = ap.parse_args(argv)
    if args.quick:
        args.batch, args.source, args.target, args.layers, args.repeats = 2, 12, 4, 1, 1
        args.prompt, args.new_tokens = 8, 3
    if args.threads:
        torch.set_num_threads(args.threads)
    lines = run(args)
    if args.update_docs is not None:
        update_docs(args.update_docs, lines, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())

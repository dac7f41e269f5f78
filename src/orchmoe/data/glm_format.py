"""GLM's own input format (blank infilling with [gMASK]) for training and generation, as THUDM's remote code expects.

Read (not copied) from THUDM/GLM `examples/squad/model_gen/tokenization_glm.py` and `modeling_glm.py` at commit
dec03b98f1d51e1aa9f4523ee4f3fefe7bf17f7e (the hub models' remote code: `GLMTokenizerMixin.
build_inputs_for_generation`, `GLMForConditionalGeneration.prepare_inputs_for_generation` / `forward`).
One example with a context of S tokens (right padded) and a generated span of G:

    input_ids     [CLS] prompt ... [gMASK] <eos> <pad> ... | <sop> t1 ... t(n-1) <pad> ...
    labels        -100 ...                                | t1 ... tn=<eop> -100 ...   (aligned with the logits)
    position_ids  0 1 2 ... S-1                           | m m ... m    (m = the index of [gMASK])
    block ids     0 0 0 ... 0                             | 1 2 ... G
    attention     every row sees the real context tokens (bidirectional); span rows also see the span causally

position_ids is (B, 2, S+G); the attention mask is (B, 1, S+G, S+G), 1 = may attend. Training passes it as
`attention_mask` (loss: cross entropy of logits against labels, no shift); generation passes the context plus
<sop> as input_ids with the full-width mask as `generation_attention_mask`, and the model slices both per step.
Routers read the prompt tokens only (`prompt_mask`: 1 on the prompt, 0 on [CLS], [gMASK], <eos>, <sop>, targets).
Tokenizers without GLM's special tokens (the tiny twin's byte tokenizer) use stand-ins from their extra ids.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from orchmoe.errors import ConfigError

IGNORE = -100
GLM = "glm"
# The remote-code classes THUDM's GLM checkpoints register (transformers 5's native "glm" is GLM-4: GlmForCausalLM).
_REMOTE_CLASSES = ("GLMModel", "GLMForConditionalGeneration")
STAND_INS = {"cls": "<extra_id_0>", "gmask": "<extra_id_1>", "sop": "<extra_id_2>", "eop": "<extra_id_3>"}


def input_format(config) -> str:
    """'glm' for THUDM's remote-code GLM and its native twin (model_type orchmoe_glm), else 'plain'."""
    if getattr(config, "model_type", None) == "orchmoe_glm":
        return GLM
    auto_map = getattr(config, "auto_map", None) or {}
    names = list(getattr(config, "architectures", None) or []) + list(auto_map.values())
    if getattr(config, "model_type", None) == "glm" and any(n.rsplit(".", 1)[-1] in _REMOTE_CLASSES for n in names):
        return GLM
    return "plain"


@dataclass(frozen=True)
class SpecialIds:
    cls: int | None
    gmask: int
    eos: int
    sop: int
    eop: int
    pad: int


def special_ids(tokenizer) -> SpecialIds:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if hasattr(tokenizer, "gmask_token_id"):  # THUDM's GLMTokenizerMixin
        return SpecialIds(tokenizer.cls_token_id, tokenizer.gmask_token_id, tokenizer.eos_token_id,
                          tokenizer.sop_token_id, tokenizer.eop_token_id, pad)
    ids = {k: tokenizer.convert_tokens_to_ids(v) for k, v in STAND_INS.items()}
    if any(i is None or i == tokenizer.unk_token_id for i in ids.values()):
        raise ConfigError(f"GLM input format: tokenizer {type(tokenizer).__name__} has neither GLM's special tokens "
                          f"([gMASK], <|startofpiece|>, <|endofpiece|>) nor the stand-ins {sorted(STAND_INS.values())}")
    return SpecialIds(ids["cls"], ids["gmask"], tokenizer.eos_token_id, ids["sop"], ids["eop"], pad)


def collate(c, records: list[dict]) -> dict:
    """The batch for collator `c` (orchmoe.data.batching.Collator with input_format 'glm')."""
    sp = special_ids(c.tokenizer)
    head = [sp.cls] if sp.cls is not None else []
    contexts, spans = [], []
    for r in records:
        prompt = c._encode(r["prompt"].rstrip())  # [gMASK] follows the prompt's last token directly
        limit = c.max_source_length - len(head) - 2
        if len(prompt) > limit:  # keep the end: the instance input and "Output:" (GLM's tokenizers truncate left too)
            c.truncated["prompts"] += 1
            prompt = prompt[len(prompt) - limit:]
        contexts.append(head + prompt + [sp.gmask, sp.eos])
        spans.append((len(head), len(head) + len(prompt)))
    S = max(len(x) for x in contexts)
    train = c.mode == "train"
    if train:
        targets = []
        for r in records:
            ids = c._encode(" " + r["target"])
            if len(ids) > c.max_target_length - 1:
                c.truncated["targets"] += 1
                ids = ids[: c.max_target_length - 1]
            targets.append(ids + [sp.eop])
        G = max(len(t) for t in targets)  # build_inputs_for_generation(targets, padding=False)
    else:
        G = c.max_target_length  # the widest span generate() may fill: max_new_tokens <= G
    tokens, positions, masks, labels, prompt_mask = [], [], [], [], []
    for i, ctx in enumerate(contexts):
        pad = S - len(ctx)
        mask_pos = len(ctx) - 2
        if train:
            t = targets[i]
            tokens.append(ctx + [sp.pad] * pad + [sp.sop] + t[:-1] + [sp.pad] * (G - len(t)))
            labels.append([IGNORE] * S + t + [IGNORE] * (G - len(t)))
        else:
            tokens.append(ctx + [sp.pad] * pad + [sp.sop])
        positions.append([list(range(S)) + [mask_pos] * G, [0] * S + list(range(1, G + 1))])
        m = torch.zeros(S + G, S + G, dtype=torch.long)
        m[:, :len(ctx)] = 1
        m[S:, S:] = torch.tril(torch.ones(G, G, dtype=torch.long))
        masks.append(m)
        a, b = spans[i]
        prompt_mask.append([0] * a + [1] * (b - a) + [0] * (S - b))
    batch = {
        "task_ids": torch.tensor([r["task_id"] if r.get("task_id") is not None else -1 for r in records]),
        "domain_ids": torch.tensor([r["domain_id"] if r.get("domain_id") is not None else -1 for r in records]),
        "input_ids": torch.tensor(tokens),
        "position_ids": torch.tensor(positions),
        "prompt_mask": torch.tensor(prompt_mask),
    }
    mask = torch.stack(masks).unsqueeze(1)
    if train:
        batch["attention_mask"], batch["labels"] = mask, torch.tensor(labels)
    else:
        batch["generation_attention_mask"] = mask
    return batch


def generate_kwargs(tokenizer, fmt: str) -> dict:
    """GLM stops at <|endofpiece|> (the hub example passes eos_token_id=tokenizer.eop_token_id)."""
    if fmt != GLM:
        return {}
    sp = special_ids(tokenizer)
    return {"eos_token_id": sp.eop, "pad_token_id": sp.pad}


def forward_inputs(batch: dict) -> dict:
    """A generation batch as one forward pass over the context and <sop> (what prepare_inputs_for_generation
    builds at the first step), for callers that read hidden states."""
    L = batch["input_ids"].shape[1]
    return {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"][:, :, :L],
            "attention_mask": batch["generation_attention_mask"][:, :, :L, :L]}


@contextlib.contextmanager
def generation(model, fmt: str):
    """Beam search with GLM's (B, 2, L) position ids. transformers 5 repeats a 3-D position_ids along dim 1 (the
    multimodal (3, B, L) layout), which would duplicate GLM's position / block rows instead of the examples; this
    expands them along the batch, as THUDM's own `_expand_inputs_for_generation` overrides do."""
    if fmt != GLM:
        yield
        return
    inner = model._expand_inputs_for_generation

    def expand(expand_size=1, is_encoder_decoder=False, input_ids=None, **kwargs):
        positions = kwargs.pop("position_ids", None)
        input_ids, kwargs = inner(expand_size=expand_size, is_encoder_decoder=is_encoder_decoder,
                                  input_ids=input_ids, **kwargs)
        if positions is not None:
            kwargs["position_ids"] = positions.repeat_interleave(expand_size, dim=0)
        return input_ids, kwargs

    model._expand_inputs_for_generation = expand
    try:
        yield
    finally:
        del model._expand_inputs_for_generation

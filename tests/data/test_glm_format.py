"""GLM's own input format ([gMASK] / <sop>, 2-D position ids, context-vs-span attention) on the native GLM twin.

The expected tensors below are written out by hand from THUDM's `build_inputs_for_generation` (tokenization_glm.py,
THUDM/GLM examples/squad/model_gen @ dec03b98; docs/methods.md row 20), with the byte tokenizer's stand-ins:
[CLS] = 259, [gMASK] = 260, <sop> = 261, <eop> = 262, <eos> = 1, <pad> = 0, byte b = b + 3 ('a' = 100, ' ' = 35).
"""
from __future__ import annotations

import json

import pytest
import torch
from transformers import GlmConfig, LlamaConfig, PretrainedConfig

from orchmoe.adapters import AdapterConfig, attach_adapters
from orchmoe.adapters.export import prompt_routing
from orchmoe.data import glm_format
from orchmoe.data.batching import make_collator
from orchmoe.models.tiny import build_tiny, byte_tokenizer
from orchmoe.training.evaluate import evaluate
from orchmoe.training.trainer import TrainConfig, train

from ..adapters.helpers import METHODS, method_config, randomise_B

MODEL_KEYS = ("task_ids", "domain_ids", "prompt_mask")
RECORDS = [{"prompt": "ab ", "target": "x", "task_id": 0}, {"prompt": "abcd", "target": "yz", "task_id": 1}]


def _model_inputs(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if k not in MODEL_KEYS}


def test_training_layout_is_build_inputs_for_generation_with_targets():
    batch = make_collator(byte_tokenizer(), False, 16, 8, "train", "glm")(RECORDS)
    # context [CLS] prompt [gMASK] <eos>, right padded to S = 7; span <sop> + target (+ <eop>), G = 4 (the longest)
    assert batch["input_ids"].tolist() == [[259, 100, 101, 260, 1, 0, 0, 261, 35, 123, 0],
                                           [259, 100, 101, 102, 103, 260, 1, 261, 35, 124, 125]]
    assert batch["labels"].tolist() == [[-100] * 7 + [35, 123, 262, -100], [-100] * 7 + [35, 124, 125, 262]]
    # span positions = the index of [gMASK] (3, 5); block positions count 1.. through the span
    assert batch["position_ids"].tolist() == [[[0, 1, 2, 3, 4, 5, 6, 3, 3, 3, 3], [0] * 7 + [1, 2, 3, 4]],
                                              [[0, 1, 2, 3, 4, 5, 6, 5, 5, 5, 5], [0] * 7 + [1, 2, 3, 4]]]
    mask = batch["attention_mask"]
    assert mask.shape == (2, 1, 11, 11)
    context = torch.tensor([1, 1, 1, 1, 1, 0, 0])  # real context tokens of example 0, seen by every row
    assert (mask[0, 0, :, :7] == context).all() and (mask[1, 0, :, :7] == 1).all()
    assert (mask[:, 0, :7, 7:] == 0).all()  # the context never sees the span
    assert (mask[:, 0, 7:, 7:] == torch.tril(torch.ones(4, 4, dtype=torch.long))).all()
    # routers read the prompt only: not [CLS], [gMASK], <eos>, padding or the span
    assert batch["prompt_mask"].tolist() == [[0, 1, 1, 0, 0, 0, 0], [0, 1, 1, 1, 1, 0, 0]]
    assert batch["task_ids"].tolist() == [0, 1]


def test_generation_layout_and_truncation():
    collate = make_collator(byte_tokenizer(), False, 6, 5, "generate", "glm")
    batch = collate(RECORDS)
    # room for 3 prompt tokens: "abcd" keeps its end; generation input = context + <sop>; masks span G = 5 steps
    assert batch["input_ids"].tolist() == [[259, 100, 101, 260, 1, 0, 261], [259, 101, 102, 103, 260, 1, 261]]
    assert collate.truncated == {"prompts": 1, "targets": 0}
    assert batch["position_ids"].tolist()[1] == [[0, 1, 2, 3, 4, 5, 4, 4, 4, 4, 4], [0] * 6 + [1, 2, 3, 4, 5]]
    assert batch["generation_attention_mask"].shape == (2, 1, 11, 11) and "labels" not in batch
    train = make_collator(byte_tokenizer(), False, 16, 2, "train", "glm")
    assert train([RECORDS[1]])["labels"].tolist()[0][-2:] == [35, 262] and train.truncated["targets"] == 1


def test_format_follows_the_model_config():
    remote = PretrainedConfig(architectures=["GLMModel"],
                              auto_map={"AutoModelForSeq2SeqLM": "modeling_glm.GLMForConditionalGeneration"})
    remote.model_type = "glm"  # THUDM/glm-10b's config.json
    assert glm_format.input_format(remote) == "glm"
    assert glm_format.input_format(build_tiny("glm", d_model=32).config) == "glm"
    assert glm_format.input_format(GlmConfig()) == "plain"  # transformers' native glm is GLM-4
    assert glm_format.input_format(LlamaConfig()) == "plain"


def test_twin_reads_the_format_as_the_remote_model():
    """The context ignores the span; an example's logits do not depend on its batch mates (padding); generation
    with a KV cache equals recomputing the whole sequence each step (what the remote code does under transformers 5)."""
    model, tok = build_tiny("glm", d_model=32, seed=3), byte_tokenizer()
    batch = make_collator(tok, False, 16, 8, "train", "glm")(RECORDS)
    logits = model(**_model_inputs(batch)).logits
    other = dict(_model_inputs(batch), input_ids=batch["input_ids"].clone())
    other["input_ids"][:, 8:] = 50
    assert torch.allclose(model(**other).logits[:, :7], logits[:, :7], atol=1e-5)
    alone = make_collator(tok, False, 16, 8, "train", "glm")(RECORDS[:1])
    keep = [0, 1, 2, 3, 4, 7, 8, 9]  # example 0's real context and span positions
    assert torch.allclose(model(**_model_inputs(alone)).logits[0, [0, 1, 2, 3, 4, 5, 6, 7]], logits[0, keep], atol=1e-5)
    gen = make_collator(tok, False, 16, 6, "generate", "glm")(RECORDS)
    kwargs = dict(max_new_tokens=6, do_sample=False, **glm_format.generate_kwargs(tok, "glm"))
    cached = model.generate(**_model_inputs(gen), **kwargs)
    assert torch.equal(cached, model.generate(**_model_inputs(gen), use_cache=False, **kwargs))
    assert cached.shape == (2, 8 + 6) and (cached[:, :8] == gen["input_ids"]).all()


@pytest.mark.parametrize("method", METHODS)
def test_every_method_generates_through_the_format(method):
    """Greedy and beam search; sequence-level routing reads the prompt tokens only: swapping the [CLS] / [gMASK] /
    <sop> ids leaves the first block's routing unchanged, and an example routes the same alone or in a batch."""
    torch.manual_seed(0)
    model = attach_adapters(build_tiny("glm", d_model=32), method_config(method, "glm")).eval()
    randomise_B(model)
    tok = byte_tokenizer()
    gen = make_collator(tok, False, 16, 4, "generate", "glm")
    batch = gen(RECORDS)
    kwargs = dict(max_new_tokens=4, do_sample=False, **glm_format.generate_kwargs(tok, "glm"))
    for beams in (1, 2):
        with glm_format.generation(model.base_model, "glm"):
            out = model.generate(**batch, num_beams=beams, **kwargs)
        assert out.shape[0] == 2 and (out[:, :8] == batch["input_ids"]).all()
    model.generate(**batch, **kwargs)
    routing = model.last_routing()
    model.generate(**gen(RECORDS[:1]), **kwargs)  # example 0 alone: no padding in its context
    alone = model.last_routing()
    for group, values in routing.items():
        for key, value in values.items():
            assert torch.allclose(alone[group][key][0].float(), value[0].float(), atol=1e-5), (group, key)
    swapped = dict(batch, input_ids=batch["input_ids"].clone())
    for special in (259, 260, 261):
        swapped["input_ids"][swapped["input_ids"] == special] = 300
    model.generate(**swapped, **kwargs)
    again = model.last_routing()
    first = [g for g in routing if g.replace(".", "__").split("layers__")[-1].split("__")[0] == "0"]
    assert first or method in ("lora", "moe_lora", "poly", "mhr")  # those have no per-example readout
    if method == "moe_lora":  # routes every token (specials and generated ones included): no per-prompt routing
        return
    for group in first:
        assert all(torch.allclose(again[group][k].float(), v.float(), atol=1e-5) for k, v in routing[group].items())
    weights, readout = prompt_routing(model, batch)  # `orchmoe route` / export read the same routing
    for group, values in routing.items():
        assert all(torch.allclose(readout[group][k].float(), v.float(), atol=1e-5) for k, v in values.items())


def _suite(root):
    rows = [{"id": f"t{t}-{i}", "task": f"task{t}", "task_id": t, "domain_id": t, "prompt": f"Copy {w}. Output:",
             "target": w, "references": [w]} for t in range(2) for i, w in enumerate(["ab", "cd", "ef", "gh"])]
    root.mkdir()
    for split in ("train", "eval"):
        (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.mark.parametrize("method", ["orchmoe", "moa"])
def test_train_reduces_loss_and_evaluates(tmp_path, method):
    """The trainer and evaluate() pick the format from the model config; MoA's classifier reads the same prompt
    features through it."""
    suite = _suite(tmp_path / "suite")
    cfg = method_config(method, "glm", rank=2) | ({"n_tasks": 2} if method == "orchmoe" else {"n_skills": 2})
    train_cfg = TrainConfig(lr=5e-2, batch_size=4, max_steps=40, max_source_length=32, max_target_length=6,
                            save_every=100, log_every=1)
    model = train(build_tiny("glm", d_model=32), byte_tokenizer(), suite, AdapterConfig.from_dict(cfg), train_cfg,
                  seed=0, work_dir=tmp_path / "work")
    losses = [row["lm_loss"] for row in model.train_log]
    assert sum(losses[-5:]) / 5 < sum(losses[:3]) / 3 - 0.2, losses  # random tiny base: from ln(384) = 5.95
    model.save_adapters(tmp_path / "ckpt")
    rows, metrics = evaluate(build_tiny("glm", d_model=32), byte_tokenizer(), suite, "eval",
                             checkpoint=tmp_path / "ckpt", batch_size=3, max_source_length=32, max_target_length=6)
    assert len(rows) == 8 and metrics["n"] == 8 and metrics["mean"]["perplexity"] > 1
    assert all(r["target_tokens"] == 4 for r in rows)  # " ab" + <eop>: labels aligned, not shifted
    if method == "moa":  # both accuracies recounted from the rows against the suite's labels (ids are t{domain}-i)
        gold = [int(r["id"][1]) for r in rows]
        assert [r["domain_id"] for r in rows] == gold
        for key, field in (("router_accuracy", "predicted_domain"), ("classifier_accuracy", "classifier_domain")):
            percent = 100 * sum(r[field] == g for r, g in zip(rows, gold)) / len(rows)
            assert metrics["mean"][key] == pytest.approx(percent), key


def test_a_tokenizer_without_glm_tokens_is_named():
    from transformers import ByT5Tokenizer

    from orchmoe.errors import ConfigError

    with pytest.raises(ConfigError, match="ByT5Tokenizer has neither GLM's special tokens"):
        make_collator(ByT5Tokenizer(extra_ids=0), False, 16, 4, "train", "glm")(RECORDS)

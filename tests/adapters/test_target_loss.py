"""Training loss with the LM head at target positions only (MultiAdapterModel(return_logits=False)) equals the base
model's full-logits loss, and its gradients, on every decoder-only layout: padding and prompts of several lengths in
one batch, GLM's unshifted labels included. Gradient checkpointing (MultiAdapterModel.set_gradient_checkpointing)
gives the plain path's loss and gradients for every method on T5, Llama and GLM."""
from __future__ import annotations

import json

import pytest
import torch

from orchmoe.adapters.model import MultiAdapterModel
from orchmoe.cli import main
from orchmoe.data.batching import make_collator
from orchmoe.models.tiny import byte_tokenizer

from .helpers import METHODS, adapted, randomise_B

RECORDS = [{"prompt": "a", "target": "xyz", "task_id": 0, "domain_id": 0},  # prompts of 1..13 bytes, targets 1..5
           {"prompt": "abcdefghijklm", "target": "q", "task_id": 1, "domain_id": 1},
           {"prompt": "abcdef", "target": "hello", "task_id": 2, "domain_id": 2}]


def _loss_and_grads(model, batch: dict, return_logits: bool, routing: bool = False):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)  # the same dropout / routing draws on both paths
    out = model(**batch, return_logits=return_logits)
    if routing:  # with the routing losses (MoA, MoE-LoRA, OrchMoE), as the trainer
        out.loss = out.loss + model.routing_loss()
    out.loss.backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize(("arch", "fmt"), [("llama", "plain"), ("gpt2", "plain"), ("baichuan", "plain"),
                                           ("glm", "glm"), ("glm", "plain")])  # the twin as a plain causal LM too
@pytest.mark.parametrize("method", ["lora", "orchmoe"])  # orchmoe: its router reads the prompt's hidden states
def test_target_loss_and_gradients_equal_the_full_path(arch, fmt, method):
    model = adapted(arch, method)
    randomise_B(model)
    model.train()
    batch = make_collator(byte_tokenizer(), False, 32, 8, "train", fmt)(RECORDS)
    assert (batch["labels"] == -100).sum(1).unique().numel() == 3  # three prompt (+ padding) lengths
    full, full_grads = _loss_and_grads(model, batch, return_logits=True)
    fast, fast_grads = _loss_and_grads(model, batch, return_logits=False)
    assert fast.logits is None and full.logits is not None  # the fast path really ran
    assert torch.allclose(fast.loss, full.loss, rtol=0, atol=1e-6), (fast.loss.item(), full.loss.item())
    assert fast_grads.keys() == full_grads.keys() and fast_grads
    for name, g in full_grads.items():
        assert g.abs().max() > 0, name  # every trainable parameter is reached
        assert torch.allclose(fast_grads[name], g, rtol=0, atol=1e-6), (name, (fast_grads[name] - g).abs().max())


def test_glm_labels_are_not_shifted():
    """GLM's own layout puts token i+1 under position i: shifting them as well would change the loss."""
    model = adapted("glm", "lora").eval()
    randomise_B(model)
    batch = make_collator(byte_tokenizer(), False, 32, 8, "train", "glm")(RECORDS)
    fast = model(**batch, return_logits=False).loss
    logits = model(**batch).logits
    aligned = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten())
    shifted = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), batch["labels"][:, 1:].flatten())
    assert torch.allclose(fast, aligned, rtol=0, atol=1e-6)
    assert (fast - shifted).abs() > 1e-4  # far above float error: the check can tell the two apart


def test_encoder_decoder_and_logits_callers_keep_the_full_path():
    model = adapted("t5", "lora").eval()
    batch = make_collator(byte_tokenizer(), True, 32, 8, "train")(RECORDS)
    full = model(**batch)
    fast = model(**batch, return_logits=False)
    assert fast.logits is not None and torch.equal(fast.loss, full.loss)


def test_trainer_computes_the_loss_at_target_positions_with_checkpointing_on_request(tmp_path, monkeypatch):
    from ..suites import sampled_builtin_suite
    from ..training.conftest import FAST, tiny_spec

    suite = sampled_builtin_suite(tmp_path / "suite", n_instances=4, max_tasks=2, n_train=4)
    calls = []
    original = MultiAdapterModel._target_loss

    def counted(self, labels, **inputs):
        loss = original(self, labels, **inputs)
        calls.append(loss)
        return loss

    monkeypatch.setattr(MultiAdapterModel, "_target_loss", counted)
    checkpointing = []
    set_checkpointing = MultiAdapterModel.set_gradient_checkpointing
    monkeypatch.setattr(MultiAdapterModel, "set_gradient_checkpointing",
                        lambda self, on: (checkpointing.append(on), set_checkpointing(self, on)))
    adapter = {"method": "lora", "target_modules": ["q_proj", "v_proj"], "rank": 2}
    train_cfg = dict(FAST, max_steps=2, save_every=2, gradient_checkpointing=True)
    assert main(["train", "--base", tiny_spec("llama"), "--data", str(suite), "--adapter-config",
                 json.dumps(adapter), "--train-config", json.dumps(train_cfg), "--out", str(tmp_path / "c"),
                 "--work", str(tmp_path / "w")]) == 0
    assert len(calls) == 2 and all(c is not None for c in calls)  # one micro-batch per step, none fell back
    assert checkpointing == [True]


@pytest.mark.parametrize("arch", ["t5", "llama", "glm"])
@pytest.mark.parametrize("method", METHODS)
def test_gradient_checkpointing_gives_the_plain_loss_and_gradients(arch, method):
    """Blocks recomputed in backward (after the call's routing context was cleared) see the same routing: loss,
    routing losses and every trainable gradient as without checkpointing; off again restores the plain blocks."""
    model = adapted(arch, method)
    randomise_B(model)
    model.train()
    fmt = "glm" if arch == "glm" else "plain"
    batch = make_collator(byte_tokenizer(), arch == "t5", 32, 8, "train", fmt)(RECORDS)
    plain, plain_grads = _loss_and_grads(model, batch, return_logits=False, routing=True)
    model.set_gradient_checkpointing(True)
    checkpointed, grads = _loss_and_grads(model, batch, return_logits=False, routing=True)
    model.zero_grad()
    torch.manual_seed(0)
    out = model(**batch, return_logits=False)
    kept = {k: len(v) for k, v in model.ctx.losses.items()}
    runs = []
    next(iter(model.adapted.values())).register_forward_hook(lambda *a: runs.append(None))
    (out.loss + model.routing_loss()).backward()
    assert len(runs) == 1  # the block really is recomputed in backward
    assert {k: len(v) for k, v in model.ctx.losses.items()} == kept  # a recomputation adds no routing loss
    assert torch.allclose(checkpointed.loss, plain.loss, rtol=0, atol=1e-6)
    for name, g in plain_grads.items():
        assert torch.allclose(grads[name], g, rtol=0, atol=1e-6), (name, (grads[name] - g).abs().max())
    model.set_gradient_checkpointing(False)
    assert not any("forward" in vars(m) for m in model.modules())


def test_gradient_checkpointing_keeps_a_hook_that_wrapped_the_block_forward():
    """accelerate's offloading hooks replace a block's forward on the instance: on and off again leaves theirs."""
    model = adapted("llama", "lora")
    block = model.base_model.model.layers[0]
    seen = []
    theirs = block.forward

    def hooked(*args, **kwargs):
        seen.append(None)
        return theirs(*args, **kwargs)
    block.forward = hooked
    model.set_gradient_checkpointing(True)
    model.set_gradient_checkpointing(True)  # twice: still one checkpoint around their forward
    assert block.forward.plain is hooked
    model.train()
    model(**make_collator(byte_tokenizer(), False, 32, 8, "train")(RECORDS)).loss.backward()
    assert len(seen) == 2  # the forward pass and its recomputation
    model.set_gradient_checkpointing(False)
    assert vars(block)["forward"] is hooked

"""Routing computed once from the prompt and cached through generate == recomputing everything at every step."""
from __future__ import annotations

import pytest
import torch

from orchmoe.adapters import registry

from .helpers import adapted, randomise_B

# from the registry: every routed method, and those routing once per sequence (block routers, task-id routing)
ROUTED = [s.name for s in registry.specs() if s.routed]
SEQUENCE_METHODS = [s.name for s in registry.specs() if s.routed and (s.router.scope == "block" or s.task_ids)]


def _prompts(arch):
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(3, 300, (2, 6), generator=g)
    mask = torch.ones_like(ids)
    if arch == "t5":
        mask[1, 4:] = 0  # encoder: right padding
    else:
        mask[1, :2] = 0  # decoder-only generation: left padding
        ids[1, :2] = 0
    return ids, mask


def _logits_by_recomputation(model, arch, ids, mask, generated, task_ids, domain_ids):
    """The reference: for each generated token, a fresh full forward (no KV cache, routing recomputed)."""
    steps, logits = generated.shape[1] - (1 if arch == "t5" else ids.shape[1]), []
    for t in range(steps):
        if arch == "t5":
            out = model(input_ids=ids, attention_mask=mask, decoder_input_ids=generated[:, : 1 + t],
                        task_ids=task_ids, domain_ids=domain_ids, use_cache=False)
        else:
            seq = generated[:, : ids.shape[1] + t]
            full_mask = torch.cat([mask, torch.ones(mask.shape[0], t, dtype=mask.dtype)], 1)
            position_ids = (full_mask.cumsum(-1) - 1).clamp_min(0)
            out = model(input_ids=seq, attention_mask=full_mask, position_ids=position_ids, prompt_mask=mask,
                        task_ids=task_ids, domain_ids=domain_ids, use_cache=False)
        logits.append(out.logits[:, -1])
    return torch.stack(logits, 1)


@pytest.mark.parametrize("arch", ["t5", "llama", "gpt2", "glm", "baichuan"])
@pytest.mark.parametrize("method", ROUTED)
def test_cached_greedy_generation_equals_recomputation(arch, method):
    model = adapted(arch, method).eval()
    randomise_B(model, std=0.5)
    ids, mask = _prompts(arch)
    task_ids, domain_ids = torch.tensor([0, 2]), torch.tensor([1, 3])
    steps = 6
    out = model.generate(input_ids=ids, attention_mask=mask, task_ids=task_ids, domain_ids=domain_ids,
                         max_new_tokens=steps, min_new_tokens=steps, do_sample=False, num_beams=1,
                         return_dict_in_generate=True, output_logits=True, output_scores=True)
    cached_logits = torch.stack(out.logits, 1)
    assert cached_logits.shape[1] == steps
    ref = _logits_by_recomputation(model, arch, ids, mask, out.sequences, task_ids, domain_ids)
    # Same logits at every step (float noise only: the KV cache changes the order of sums), hence the same tokens:
    # the greedy choice among the scores (logits after min_new_tokens has masked the end token)
    torch.testing.assert_close(cached_logits, ref, rtol=1e-4, atol=1e-4)
    assert torch.equal(out.sequences[:, -steps:], torch.stack(out.scores, 1).argmax(-1))


class _AlwaysRecompute(dict):
    """A routing cache that never reports a hit: every block routes again from its current inputs at every step."""

    def __contains__(self, key):
        return False


@pytest.mark.parametrize("arch", ["t5", "llama", "gpt2", "glm", "baichuan"])
@pytest.mark.parametrize("method", SEQUENCE_METHODS)
def test_beam_search_and_several_sequences_match_full_recomputation(arch, method):
    """PEFT's Poly crashes here (router rows B vs decoder rows B * beams); routing is expanded inside the layer.

    Reference: no KV cache and routing recomputed by every block at every step (on B * beams rows)."""
    model = adapted(arch, method).eval()
    randomise_B(model, std=0.5)
    ids, mask = _prompts(arch)
    kw = dict(input_ids=ids, attention_mask=mask, task_ids=torch.tensor([0, 2]), domain_ids=torch.tensor([1, 3]),
              max_new_tokens=5, min_new_tokens=5, num_beams=3, num_return_sequences=2, do_sample=False)
    cached = model.generate(**kw, use_cache=True)
    model.ctx.cache = _AlwaysRecompute()
    recomputed = model.generate(**kw, use_cache=False)
    assert cached.shape[0] == 4
    assert torch.equal(cached, recomputed)
    sampled = model.generate(**{**kw, "num_beams": 1, "do_sample": True}, use_cache=True)  # sampling, 2 per prompt
    assert sampled.shape[0] == 4

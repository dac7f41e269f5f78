"""The fused base + low-rank update node equals the plain autograd path: outputs and every gradient."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from orchmoe.adapters import fused_update, layer
from orchmoe.adapters.fused_update import LinearPlusLowRank

from .helpers import adapted, inputs, randomise_B, routing


@pytest.mark.parametrize("per_example", [False, True])
@pytest.mark.parametrize("alpha", [1.0, 0.25])
@pytest.mark.parametrize("with_bias", [False, True])
def test_gradcheck(per_example, alpha, with_bias):
    g = torch.Generator().manual_seed(0)
    n, L, d_in, d_out, r = 2, 3, 5, 4, 2
    x = torch.randn(n, L, d_in, generator=g, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(d_out, d_in, generator=g, dtype=torch.float64)
    bias = torch.randn(d_out, generator=g, dtype=torch.float64) if with_bias else None
    lead = (n,) if per_example else ()
    A = torch.randn(*lead, d_in, r, generator=g, dtype=torch.float64, requires_grad=True)
    B = torch.randn(*lead, r, d_out, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, A, B: LinearPlusLowRank.apply(x, weight, bias, A, B, alpha), (x, A, B))
    plain = torch.nn.functional.linear(x, weight, bias) + alpha * ((x @ A) @ B)
    assert torch.allclose(LinearPlusLowRank.apply(x, weight, bias, A, B, alpha), plain)


def _loss_and_grads(arch, method, fused, monkeypatch):
    calls = []

    class Counting:
        @staticmethod
        def apply(*args):
            calls.append(1)
            return LinearPlusLowRank.apply(*args)

    monkeypatch.setattr(layer, "fusable", fused_update.fusable if fused else (lambda *a: False))
    monkeypatch.setattr(layer, "LinearPlusLowRank", Counting)
    model = adapted(arch, method)
    randomise_B(model)
    model.train()
    torch.manual_seed(3)  # the Gumbel samples of Poly / MHR: the same in both runs
    x = inputs(arch)
    labels = x["decoder_input_ids"] if arch == "t5" else x["input_ids"]
    loss = model(**x, **routing(), labels=labels).loss
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in model.named_parameters() if p.requires_grad}, len(calls)


@pytest.mark.parametrize("arch", ["t5", "llama"])
@pytest.mark.parametrize("method", ["lora", "poly", "mhr"])
def test_adapted_model_fused_equals_plain(arch, method, monkeypatch):
    loss_f, grads_f, n_fused = _loss_and_grads(arch, method, True, monkeypatch)
    loss_p, grads_p, n_plain = _loss_and_grads(arch, method, False, monkeypatch)
    assert n_fused > 0 and n_plain == 0  # the fused node really ran, and only in the first run
    assert torch.allclose(loss_f, loss_p, rtol=1e-5, atol=1e-6)
    assert grads_f.keys() == grads_p.keys()
    for name in grads_f:
        assert torch.allclose(grads_f[name], grads_p[name], rtol=1e-4, atol=1e-6), name


def test_only_a_plain_frozen_unhooked_linear_in_training_is_fused():
    base = nn.Linear(4, 3, bias=False).requires_grad_(False)
    x = torch.randn(2, 5, 4)
    A = torch.randn(4, 2, requires_grad=True)
    assert fused_update.fusable(base, x, A)
    with torch.no_grad():
        assert not fused_update.fusable(base, x, A)  # generation: the plain path and its cached plans
    assert not fused_update.fusable(base, x, A.detach())  # nothing to train
    assert not fused_update.fusable(base, x.double(), A)  # a dtype cast on the way
    handle = base.register_forward_hook(lambda *a: None)
    assert not fused_update.fusable(base, x, A)  # a hook would be skipped
    handle.remove()
    base.weight.requires_grad_(True)
    assert not fused_update.fusable(base, x, A)  # the node gives the base weight no gradient

"""Every method fits a toy multi-task problem on CPU; the MoA router learns the domains."""
from __future__ import annotations

import pytest
import torch

from .helpers import METHODS, adapted

N_TASKS = 3


def toy_batch(g, batch=16, n=5):
    """Prompt = [marker of task t] + n random tokens; target = a task-specific word (3 tokens) + the first token."""
    task = torch.randint(0, N_TASKS, (batch,), generator=g)
    x = torch.randint(10, 60, (batch, n), generator=g)
    marker = 100 + task[:, None]
    target = torch.cat([200 + 10 * task[:, None] + torch.arange(3), x[:, :1]], 1)
    ids = torch.cat([marker, x, target], 1)
    labels = ids.clone()
    labels[:, : n + 1] = -100
    prompt_mask = torch.zeros_like(ids)
    prompt_mask[:, : n + 1] = 1
    return dict(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels, prompt_mask=prompt_mask,
                task_ids=task, domain_ids=task)


def sharpen_output_layer(model, factor=30.0):
    """A randomly initialised tiny base has near-uniform logits (std 0.02 weights); a pretrained head is sharp."""
    with torch.no_grad():
        model.base_model.lm_head.weight.mul_(factor)
    return model


def train(model, steps=150, lr=1e-2, seed=0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.param_groups(lr=lr, router_lr=lr * 10))
    model.train()
    losses = []
    for _ in range(steps):
        out = model(**toy_batch(g))
        loss = out.loss + model.routing_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(out.loss.item())
    return losses


@pytest.mark.parametrize("method", METHODS)
def test_every_method_fits_a_toy_multitask_problem(method):
    model = adapted("llama", method, rank=4, alpha=8.0, n_skills=None if method == "lora" else N_TASKS,
                    target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"],
                    **({"n_tasks": N_TASKS} if method in ("poly", "mhr", "orchmoe") else {}))
    losses = train(sharpen_output_layer(model))
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.6 * first, (method, first, last)


def test_moa_router_learns_the_domains():
    model = adapted("llama", "moa", n_skills=N_TASKS, routing_loss_weight=1.0)
    train(sharpen_output_layer(model), steps=120)
    model.eval()
    batch = toy_batch(torch.Generator().manual_seed(123), batch=64)
    with torch.no_grad():
        model(**{k: v for k, v in batch.items() if k != "domain_ids"})
    for group, r in model.last_routing().items():
        accuracy = (r["predicted_domain"] == batch["domain_ids"]).float().mean().item()
        assert accuracy > 0.9, (group, accuracy)

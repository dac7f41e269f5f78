"""Identity at init, frozen base, equivalences between methods, padding invariance, save/load."""
from __future__ import annotations

import json

import pytest
import torch

from orchmoe.adapters import AdapterConfig, attach_adapters, load_adapters
from orchmoe.adapters.bank import LoRABank
from orchmoe.errors import ConfigError
from orchmoe.models.tiny import build_tiny

from .helpers import METHODS, adapted, inputs, randomise_B, routing

ARCHS = ["t5", "llama", "gpt2", "glm", "baichuan"]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", METHODS)
def test_zero_B_at_init_gives_the_base_model(arch, method):
    base = build_tiny(arch)
    model = adapted(arch, method).train()  # training mode: Gumbel noise and gold routing must not matter with B = 0
    x = inputs(arch)
    torch.testing.assert_close(model(**x, **routing()).logits, base(**x).logits, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("method", METHODS)
def test_only_adapter_and_router_parameters_train(method):
    model = adapted("llama", method).train()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all((".bank." in n) or ("router" in n) or ("gate" in n) or ("logits" in n) for n in trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(model.param_groups(lr=1e-2, router_lr=1e-1))
    x = inputs("llama")
    loss = model(**x, labels=x["input_ids"], prompt_mask=x["attention_mask"], **routing()).loss + model.routing_loss()
    loss.backward()
    opt.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed <= trainable
    assert any(".lora_B" in n for n in changed)


def test_moe_lora_with_one_expert_equals_lora():
    lora = adapted("llama", "lora", seed=0)
    moe = adapted("llama", "moe_lora", seed=0, n_skills=1)
    randomise_B(lora)
    with torch.no_grad():
        for (n1, p1), (n2, p2) in zip(
            [(n, p) for n, p in lora.named_parameters() if ".bank." in n],
            [(n, p) for n, p in moe.named_parameters() if ".bank." in n],
        ):
            assert n1 == n2
            p2.copy_(p1)
    x = inputs("llama")
    torch.testing.assert_close(moe(**x).logits, lora(**x).logits)


def test_poly_with_saturated_one_hot_allocation_equals_that_lora():
    poly = adapted("t5", "poly", rank=4).eval()
    randomise_B(poly)
    skill = 2
    with torch.no_grad():
        for n, p in poly.named_parameters():
            if n.endswith("module_logits"):
                p.fill_(-40.0)
                p[:, skill] = 40.0
    lora = adapted("t5", "lora", rank=4, alpha=1.0)  # Poly scales by 1/r = alpha/r with alpha 1
    with torch.no_grad():
        lora_params = dict(lora.named_parameters())
        for n, p in poly.named_parameters():
            if ".bank." in n:
                lora_params[n].copy_(p[skill : skill + 1])
    x = inputs("t5")
    torch.testing.assert_close(poly(**x, task_ids=torch.tensor([0, 1])).logits, lora(**x).logits, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", ["orchmoe", "moa"])
def test_sequence_routing_does_not_depend_on_padding(arch, method):
    model = adapted(arch, method).eval()
    randomise_B(model)
    x = inputs(arch, batch=1, length=6, pad_first=0)
    alone = model(**x, **routing(1))
    routing_alone = model.last_routing()
    pad = 5  # padding after the prompt keeps every prompt token at its position
    padded = dict(x)
    padded["input_ids"] = torch.cat([x["input_ids"], torch.zeros(1, pad, dtype=torch.long)], 1)
    padded["attention_mask"] = torch.cat([x["attention_mask"], torch.zeros(1, pad, dtype=torch.long)], 1)
    out = model(**padded, **routing(1))
    key = "task_weights" if method == "orchmoe" else "domain_probs"
    for group, r in model.last_routing().items():
        torch.testing.assert_close(r[key], routing_alone[group][key], rtol=1e-5, atol=1e-6)
    n = alone.logits.shape[1]
    torch.testing.assert_close(out.logits[:, :n], alone.logits, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("reading", ["affine", "softmax"])
def test_orchmoe_task_router_is_eq4_on_eq5_pooled_over_prompt_tokens(reading):
    model = adapted("llama", "orchmoe", orchmoe_task_router=reading).eval()
    router = next(iter(model.block_routers.values()))
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(2, 6, 64, generator=g) * 3
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 0]])
    x = hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + 1e-6)
    W, b = router.task_router.weight, router.task_router.bias  # W_Task (T x d) and Bias
    expected = []
    for i in range(2):  # literal eq. 5 on the prompt tokens of each example, the mean, then eq. 4: W_Task X_hat + Bias
        xb = x[i, mask[i].bool()]
        x_hat = torch.softmax(xb @ xb.T / 8.0, -1) @ xb + xb
        w = W @ x_hat.mean(0) + b
        expected.append(w if reading == "affine" else torch.softmax(w, -1))
    expected = torch.stack(expected).detach()
    # the production path (model.py: features, then route_features, which records the task weights)
    alpha = router.route_features(router.features(hidden, mask))
    got = router.ctx.readout[router.name]["task_weights"]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    if reading == "affine":
        assert (got < 0).any() and not torch.allclose(got.sum(-1), torch.ones(2))  # no softmax: signed, any sum
    torch.testing.assert_close(alpha, got @ router.allocation(), rtol=1e-6, atol=1e-7)  # eq. 3: alpha = w(X) W_hat


@pytest.mark.parametrize("arch", ["t5", "llama"])
def test_orchmoe_alpha_at_init_is_uniform_under_softmax_only(arch):
    """W_Skill starts at U(+-1e-3): W_hat is ~uniform, so under the softmax every input gets alpha = 1/S exactly
    (routing starts input-independent); eq. 4 as written gives each input its own scale from the start."""
    x = inputs(arch, batch=4, pad_first=0)
    alphas = {}
    for reading in ("affine", "softmax"):
        model = adapted(arch, "orchmoe", orchmoe_task_router=reading).eval()
        model(**x)
        alphas[reading] = torch.cat([r["skill_weights"] for r in model.last_routing().values()])  # (blocks * 4, S)
    torch.testing.assert_close(alphas["softmax"], torch.full_like(alphas["softmax"], 0.25), rtol=0, atol=1e-3)
    affine = alphas["affine"]
    assert (affine - 0.25).abs().max() > 0.1 and affine.std(0).min() > 0.01  # not 1/S, and varies across inputs


def test_orchmoe_router_reads_prompt_tokens_only_in_decoder_only_training():
    model = adapted("llama", "orchmoe").train()
    x = inputs("llama", batch=2, length=8, pad_first=0)
    prompt_mask = torch.zeros_like(x["input_ids"])
    prompt_mask[:, :5] = 1
    model.eval()
    model(**x, prompt_mask=prompt_mask)
    a = model.last_routing()
    y = {k: v.clone() for k, v in x.items()}
    y["input_ids"][:, 5:] = 7  # change only the target tokens
    model(**y, prompt_mask=prompt_mask)
    b = model.last_routing()
    for k in a:
        torch.testing.assert_close(a[k]["task_weights"], b[k]["task_weights"])
    with pytest.raises(ConfigError, match="prompt_mask"):
        model(**x, labels=x["input_ids"])


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", METHODS)
def test_save_load_round_trip(tmp_path, arch, method):
    model = adapted(arch, method).eval()
    randomise_B(model)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.requires_grad and ".bank." not in n:
                p.add_(torch.randn_like(p) * 0.1)
    model.save_adapters(tmp_path / "ckpt")
    loaded = load_adapters(build_tiny(arch), tmp_path / "ckpt").eval()
    x = inputs(arch)
    assert torch.equal(model(**x, **routing()).logits, loaded(**x, **routing()).logits)


def test_orchmoe_checkpoint_saved_before_the_task_router_option_loads_with_its_softmax(tmp_path):
    model = adapted("t5", "orchmoe", orchmoe_task_router="softmax").eval()
    randomise_B(model)
    model.save_adapters(tmp_path / "ckpt")
    file = tmp_path / "ckpt" / "orchmoe_adapter.json"
    data = json.loads(file.read_text())
    assert data["orchmoe_adapter"]["orchmoe_task_router"] == "softmax"
    del data["orchmoe_adapter"]["orchmoe_task_router"]  # a config written before the option existed
    file.write_text(json.dumps(data))
    loaded = load_adapters(build_tiny("t5"), tmp_path / "ckpt").eval()
    assert loaded.cfg.orchmoe_task_router == "softmax"
    x = inputs("t5")
    assert torch.equal(model(**x).logits, loaded(**x).logits)


def test_bank_has_no_python_loop_over_skills_and_matches_the_sum():
    bank = LoRABank(16, 12, n_skills=4, rank=3, scaling=0.5)
    torch.nn.init.normal_(bank.lora_B)
    x = torch.randn(2, 5, 16)
    w = torch.softmax(torch.randn(2, 4), -1)
    expected = sum(w[:, s, None, None] * (x @ bank.lora_A[s].T @ bank.lora_B[s].T) for s in range(4)) * 0.5
    torch.testing.assert_close(bank(x, w, "outputs"), expected, rtol=1e-5, atol=1e-5)
    merged_A = torch.einsum("bs,sri->bri", w, bank.lora_A)
    merged_B = torch.einsum("bs,sor->bor", w, bank.lora_B)
    expected_merge = torch.einsum("bli,bri,bor->blo", x, merged_A, merged_B) * 0.5
    torch.testing.assert_close(bank(x, w, "weights"), expected_merge, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad, field", [
    ({"method": "nope"}, "method"),
    ({"method": "lora", "rank": 0}, "rank"),
    ({"method": "poly"}, "n_tasks"),
    ({"method": "moe_lora", "n_skills": 4, "top_k": 5}, "top_k"),
    ({"method": "lora", "lr": 1}, "lr"),
    ({"method": "mhr", "n_tasks": 2, "n_splits": 0}, "n_splits"),
    ({"method": "orchmoe"}, "n_abstract_tasks"),
    ({"method": "orchmoe", "n_tasks": 3, "orchmoe_task_router": "sigmoid"}, "orchmoe_task_router"),
    ({"method": "orchmoe", "n_tasks": 3, "orchmoe_balance_weight": 0.1}, "orchmoe_balance_weight.*softmax"),
    ({"method": "lora", "dropout": 1.5}, "dropout"),
])
def test_bad_config_names_the_field(bad, field):
    with pytest.raises(ConfigError, match=field):
        AdapterConfig.from_dict(bad)


def test_targets_matching_nothing_and_indivisible_splits():
    with pytest.raises(ConfigError, match="target_modules"):
        attach_adapters(build_tiny("t5"), {"method": "lora", "target_modules": ["q_proj"]})
    with pytest.raises(ConfigError, match="n_splits=3"):
        attach_adapters(build_tiny("t5"), {"method": "mhr", "target_modules": ["q"], "n_tasks": 2, "n_splits": 3})
    with pytest.raises(ConfigError, match="task_ids"):
        adapted("t5", "poly")(**inputs("t5"))


@pytest.mark.parametrize("temperature", [1.0, 0.5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gumbel_sigmoid_sample_is_torch_relaxed_bernoulli_bit_for_bit(temperature, dtype):
    # Poly / MHR / OrchMoE sample with a written-out RelaxedBernoulli (speed); it must stay torch's, values and grads.
    from torch.distributions import RelaxedBernoulli

    from orchmoe.adapters.methods.poly import relaxed_bernoulli_rsample

    base = torch.linspace(-30, 30, 24, dtype=dtype).view(2, 3, 4)  # +-30: the clamps at both ends are exercised
    samples, grads = [], []
    for sample in (lambda x: RelaxedBernoulli(torch.tensor(temperature, dtype=dtype), logits=x).rsample(),
                   lambda x: relaxed_bernoulli_rsample(x, temperature)):
        logits = base.clone().requires_grad_(True)
        torch.manual_seed(7)
        z = sample(logits)
        (z * torch.arange(z.numel(), dtype=dtype).view_as(z)).sum().backward()
        samples.append(z.detach())
        grads.append(logits.grad)
    assert torch.equal(samples[0], samples[1])
    assert torch.equal(grads[0], grads[1])
    assert samples[0].std() > 0.1  # a real sample, not constants


def test_task_ids_are_checked_once_per_call_for_all_routers():
    model = adapted("llama", "poly")
    x = inputs("llama")
    calls = []
    ids = routing()["task_ids"]

    class Counting(torch.Tensor):
        def __lt__(self, other):
            calls.append(other)
            return super().__lt__(other)

    model(**{**x, **routing(), "task_ids": ids.as_subclass(Counting)})
    n_routers = sum(1 for n, _ in model.named_modules() if n.endswith("router"))
    assert n_routers > 1 and calls == [-1, 0]  # the range check and the unknown mask, once each
    with pytest.raises(ConfigError, match="task_ids must be in"):
        model(**{**x, **routing(), "task_ids": torch.full_like(ids, 99)})


def test_labels_need_not_be_contiguous():
    # the README snippet passes labels=ids[:, :4]; transformers' T5 loss calls labels.view(-1) on them
    model = adapted("t5", "orchmoe")
    ids = torch.randint(3, 100, (2, 12), generator=torch.Generator().manual_seed(0))
    labels = ids[:, :4]
    assert not labels.is_contiguous()
    x = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    torch.testing.assert_close(model(**x, labels=labels).loss, model(**x, labels=labels.contiguous()).loss)

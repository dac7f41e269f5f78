"""MoE-LoRA / MoLoRA (Zadouri et al.): a token-level router per adapted linear.

p(x) = softmax(W_g x) over S experts (W_g: d_in -> S, no bias, N(0, 0.02) as in MoLoRA's code); with top_k the
k largest probabilities are kept and renormalised (k = S is MoLoRA's soft mixing); delta_h = sum_e p_e B_e A_e x.
Optional Switch-style load balancing: S * sum_e f_e P_e (f: fraction of tokens whose top-1 is e, P: mean prob).
"""
import torch
from torch import nn

from ..registry import MethodSpec, register_method
from ..routing import Router


class MoELoRARouter(Router):
    mix = "outputs"

    def __init__(self, cfg, d_in: int):
        super().__init__()
        self.gate = nn.Linear(d_in, cfg.n_skills, bias=False)
        nn.init.normal_(self.gate.weight, std=0.02)
        self.top_k = cfg.top_k
        self.balance_loss_weight = cfg.balance_loss_weight

    def weights(self, x):
        probs = torch.softmax(self.gate(x.to(self.gate.weight.dtype)).float(), dim=-1)
        w = probs
        if self.top_k is not None and self.top_k < probs.shape[-1]:
            top = probs.topk(self.top_k, dim=-1)
            w = torch.zeros_like(probs).scatter(-1, top.indices, top.values)
            w = w / w.sum(-1, keepdim=True)
        if self.training and self.balance_loss_weight > 0 and self.ctx is not None:
            S = probs.shape[-1]
            flat = probs.reshape(-1, S)
            f = torch.nn.functional.one_hot(flat.argmax(-1), S).float().mean(0)
            self.ctx.add_loss("balance", self.balance_loss_weight * S * (f * flat.mean(0)).sum())
        if self.ctx is not None:  # per-sequence mean over tokens, for the training diagnostics
            self.ctx.readout[self.name] = {"skill_weights": (w.mean(1) if w.dim() == 3 else w).detach()}
        return w


SPEC = register_method(MethodSpec(
    name="moe_lora", label="MoE-LoRA", router=MoELoRARouter, order=20, defaults={"n_skills": 4},
    paper={"rank": 8, "n_skills": 4},  # OrchMoE section 4.2: 4 experts of r=8
))

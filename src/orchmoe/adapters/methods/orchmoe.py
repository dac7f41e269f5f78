"""OrchMoE (Wang et al., arXiv 2401.10559): a task router and a skill router per transformer block.

Task router, eq. 4-5, on X = the block's input hidden states over prompt tokens (RMS-normalised, padding masked):
    X_hat = softmax(X X^T / sqrt(d_k)) X + X,   w(X) = W_task mean_pool(X_hat) + b   (T abstract tasks)
eq. 4 is affine as the paper writes it (`orchmoe_task_router: affine`, default); `softmax` puts a softmax over the
T tasks on it (the earlier reading: w(X) a distribution, alpha a convex combination; docs/methods.md ambiguity 5).
Skill router, eq. 6 (= PEFT's PolyRouter): logits W_skill (T x S), U(-1e-3, 1e-3);
    W_hat = RelaxedBernoulli(1, W_skill).rsample() in training (one sample per example by default),
    sigmoid(W_skill) in evaluation; rows / row sum
Combination, eq. 3: alpha = w(X)^T W_hat (one weight per skill and example); delta_h = sum_s alpha_s B_s A_s x.
One task router per block, shared by the block's q, k and v (the reading that reproduces Table 4's ratios).
Options where the paper is silent (docs/methods.md, ambiguities 26-29): one Gumbel sample of W_hat per batch or per
example (`orchmoe_gumbel`), the init scale of W_Skill, a parameter-free layer norm of the pooled features
(`orchmoe_feature_norm`) and a balance term on the batch-mean w(X) (`orchmoe_balance_weight`, softmax reading only).
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import MethodSpec, register_method
from ..routing import PromptRouter, masked_rms_norm, self_attention_pool
from .poly import gumbel_sigmoid_weights


class OrchMoERouter(PromptRouter):
    def __init__(self, cfg, d_model: int):
        super().__init__()
        self.task_router = nn.Linear(d_model, cfg.n_abstract_tasks)  # W_task (d_k x T) + bias
        a = cfg.orchmoe_skill_init
        self.skill_logits = nn.Parameter(torch.empty(cfg.n_abstract_tasks, cfg.n_skills).uniform_(-a, a))
        self.task_softmax = cfg.orchmoe_task_router == "softmax"
        self.gumbel = cfg.orchmoe_gumbel
        self.feature_norm = cfg.orchmoe_feature_norm
        self.balance_weight = cfg.orchmoe_balance_weight

    def features(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Eq. 5 and the pooling, parameter-free: mean over prompt tokens of softmax(X X^T / sqrt(d)) X + X."""
        pooled = self_attention_pool(masked_rms_norm(hidden.to(self.task_router.weight.dtype)), mask)
        if self.feature_norm == "layer":
            # X_hat = attention + X has norm ~2 sqrt(d) and a large component shared by every prompt (the template):
            # centring and scaling each pooled vector keeps the router logits O(1) at any d
            pooled = F.layer_norm(pooled, pooled.shape[-1:])
        return pooled

    def route_features(self, features):
        w = self.task_router(features)  # eq. 4: W_Task X_hat + Bias
        if self.task_softmax:
            w = torch.softmax(w, dim=-1)
        if self.training and self.gumbel == "example":  # (B, T, S): each example its own sample, as Poly per task
            logits = self.skill_logits.expand(w.shape[0], *self.skill_logits.shape)
            alpha = torch.einsum("bt,bts->bs", w, gumbel_sigmoid_weights(logits, True))
        else:
            alpha = w @ gumbel_sigmoid_weights(self.skill_logits, self.training)  # (T, S) rows sum to 1 -> (B, S)
        if self.training and self.balance_weight > 0:
            mean = w.float().mean(0)
            entropy = -(mean * mean.clamp_min(1e-12).log()).sum()
            self.ctx.add_loss("balance", self.balance_weight * (math.log(w.shape[-1]) - entropy))
        self.ctx.readout[self.name] = {"task_weights": w.detach(), "skill_weights": alpha.detach()}
        return alpha

    def allocation(self) -> torch.Tensor:
        return gumbel_sigmoid_weights(self.skill_logits, False)


def _check(cfg, bad):
    if cfg.n_abstract_tasks is None:
        cfg.n_abstract_tasks = cfg.n_tasks
    if not isinstance(cfg.n_abstract_tasks, int) or cfg.n_abstract_tasks < 1:
        bad("n_abstract_tasks", "must be a positive integer (default: n_tasks) for method 'orchmoe'")
    if cfg.orchmoe_task_router not in ("affine", "softmax"):
        bad("orchmoe_task_router", "must be 'affine' (eq. 4 as written) or 'softmax' (a softmax over the T tasks)")
    if cfg.orchmoe_gumbel not in ("batch", "example"):
        bad("orchmoe_gumbel", "must be 'batch' or 'example'")
    if cfg.orchmoe_feature_norm not in ("none", "layer"):
        bad("orchmoe_feature_norm", "must be 'none' or 'layer'")
    if not cfg.orchmoe_skill_init > 0:
        bad("orchmoe_skill_init", "must be positive")
    if cfg.orchmoe_balance_weight < 0:
        bad("orchmoe_balance_weight", "must be >= 0")
    if cfg.orchmoe_balance_weight > 0 and cfg.orchmoe_task_router != "softmax":
        # the term is an entropy: it needs w(X) to be a distribution over the T tasks
        bad("orchmoe_balance_weight", "needs orchmoe_task_router: softmax (the balance term is the entropy of w(X))")


SPEC = register_method(MethodSpec(
    name="orchmoe", label="OrchMoE", router=OrchMoERouter, order=50, defaults={"n_skills": 4}, check=_check,
    paper={"rank": 4, "n_skills": 4},  # OrchMoE section 4.2: 4 skills of r=4
    references=tuple({"match": {"architecture": "glm-10b", "n_tasks": 100, "n_abstract_tasks": t},
                      "column": "ratio_percent", "value": v, "text": f"{v:.2f} %", "source": "OrchMoE Table 4"}
                     for t, v in ((100, 0.39), (80, 0.35), (60, 0.31), (40, 0.27), (20, 0.23))),
    uses_n_tasks=True,
))

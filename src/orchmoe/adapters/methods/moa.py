"""MoA, Mixture-of-LoRAs (Feng et al., arXiv 2403.03432): one LoRA per domain and a sequence-level router per block.

Router: a bias-free Linear(d -> n_domains) per transformer block on the mean-pooled, RMS-normalised prompt hidden
states, shared by the block's attention and FFN LoRAs (the slides' 1.05M router parameters = 32 x 4096 x 8).
Training adds routing_loss_weight * cross-entropy(router logits, domain label). With moa_train_routing="gold" each
example uses its own domain's LoRA while training; at inference the router's top-1 LoRA is used (or its softmax
with moa_inference="soft"). The predicted domain is exposed for router accuracy (MoA Table 3).
"""
import torch
import torch.nn.functional as F
from torch import nn

from ..registry import MethodSpec, register_method
from ..routing import PromptRouter, masked_rms_norm, mean_pool


class MoARouter(PromptRouter):
    def __init__(self, cfg, d_model: int):
        super().__init__()
        self.router = nn.Linear(d_model, cfg.n_skills, bias=False)
        self.routing_loss_weight = cfg.routing_loss_weight
        self.train_routing = cfg.moa_train_routing
        self.inference = cfg.moa_inference

    def features(self, hidden, mask):
        return mean_pool(masked_rms_norm(hidden.to(self.router.weight.dtype)), mask)

    def route_features(self, pooled):
        logits = self.router(pooled)
        probs = torch.softmax(logits.float(), dim=-1)
        domains = self.ctx.domain_ids
        known = domains is not None and (domains >= 0).any()
        if known:
            domains = domains.to(logits.device)
            if domains.shape[0] != logits.shape[0]:
                domains = domains.repeat_interleave(logits.shape[0] // domains.shape[0])
        if self.training and known:
            ok = domains >= 0
            self.ctx.add_loss("routing", self.routing_loss_weight * F.cross_entropy(logits[ok].float(), domains[ok]))
        self.ctx.readout[self.name] = {"domain_probs": probs.detach(), "predicted_domain": probs.argmax(-1).detach()}
        S = probs.shape[-1]
        if self.training and self.train_routing == "gold" and known:
            gold = F.one_hot(domains.clamp_min(0), S).float()
            return torch.where((domains >= 0)[:, None], gold, probs)
        if not self.training and self.inference == "top1":
            return F.one_hot(probs.argmax(-1), S).float()
        return probs


def _check(cfg, bad):
    if cfg.moa_train_routing not in ("gold", "router"):
        bad("moa_train_routing", "must be 'gold' or 'router'")
    if cfg.moa_inference not in ("top1", "soft"):
        bad("moa_inference", "must be 'top1' or 'soft'")


SPEC = register_method(MethodSpec(
    name="moa", label="MoA", router=MoARouter, order=60, defaults={"n_skills": 4}, check=_check,
    paper={"rank": 8, "n_skills": 8},  # MoA: 8 domain LoRAs
    references=({"match": {"architecture": "baichuan-7b", "rank": 64}, "column": "router", "value": 1.05e6,
                 "text": "1.05M router", "source": "MoA Table 4"},),
    domain_ids=True,
))

"""A bank of S LoRA modules for one linear layer, stored stacked and applied without a loop over skills.

A: (S, r, d_in), B: (S, d_out, r). `mix="outputs"` computes sum_s w_s B_s A_s x (OrchMoE eq. 2-3, MoLoRA) as one
rank-S*r product with each r-block scaled by its weight; `mix="weights"` first merges A_b = sum_s w_s A_s and
B_b = sum_s w_s B_s per example (PEFT/mttl Poly), and with H splits mixes each input/output block with its own
weights (MHR).

The work is split in two: `plan(weights, batch, mix)` builds the small per-example matrices (merged or reshaped
weights, the scaling folded into the smallest of them), `apply_plan(x, plan)` does the two products over the tokens.
With per-sequence routing the plan is the same at every decoding step, so the adapted linear reuses it through a
generate call (see `AdaptedLinear`); a training step builds it once per layer anyway.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def expand_to_batch(w: torch.Tensor, batch: int) -> torch.Tensor:
    """Repeat per-sequence routing when beam search / several return sequences grow the batch k-fold."""
    if w.shape[0] == batch:
        return w
    if batch % w.shape[0]:
        raise RuntimeError(f"routing batch {w.shape[0]} does not divide the layer batch {batch}")
    return w.repeat_interleave(batch // w.shape[0], dim=0)


class LoRABank(nn.Module):
    def __init__(self, d_in: int, d_out: int, n_skills: int, rank: int, scaling: float,
                 dropout: float = 0.0, n_splits: int = 1):
        super().__init__()
        self.d_in, self.d_out, self.n_skills, self.rank, self.n_splits = d_in, d_out, n_skills, rank, n_splits
        self.scaling = scaling
        self.lora_A = nn.Parameter(torch.empty(n_skills, rank, d_in))
        self.lora_B = nn.Parameter(torch.zeros(n_skills, d_out, rank))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.has_dropout = dropout > 0  # skip the identity module call in the hot path
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        # PEFT: A ~ kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(d_in), 1/sqrt(d_in)); B = 0 so the model starts as the base.
        bound = 1.0 / math.sqrt(self.d_in)
        self.lora_A.uniform_(-bound, bound)
        self.lora_B.zero_()

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None, mix: str = "outputs") -> torch.Tensor:
        """The scaled update delta_h for input x (B, L, d_in) or (B, d_in)."""
        delta, alpha = self.apply_plan(x, self.plan(weights, x.shape[0], mix))
        return delta if alpha == 1.0 else delta * alpha

    def plan(self, w: torch.Tensor | None, batch: int, mix: str) -> tuple:
        """(mix, A, B, w, alpha): the matrices `apply_plan` multiplies with; alpha is the scale still to apply."""
        S, r, H = self.n_skills, self.rank, self.n_splits
        dtype = self.lora_A.dtype
        if mix == "weights":
            w = expand_to_batch(w, batch).to(dtype)
            if w.dim() == 2:
                w = w[:, None, :]  # (B, 1, S)
            A = torch.einsum("bhs,srhi->brhi", w, self.lora_A.view(S, r, H, self.d_in // H)).flatten(2)  # (B, r, d_in)
            Bm = torch.einsum("bhs,shor->bhor", w * self.scaling,  # the scaling on the (B, H, S) weights: cheapest
                              self.lora_B.view(S, H, self.d_out // H, r)).flatten(1, 2)  # (B, d_out, r)
            return mix, A.transpose(1, 2), Bm.transpose(1, 2), None, 1.0
        A = self.lora_A.reshape(S * r, self.d_in)
        B = self.lora_B.permute(1, 0, 2).reshape(self.d_out, S * r)  # a view when S == 1
        if w is None:
            return mix, A, B, None, self.scaling
        w = expand_to_batch(w, batch).to(dtype)
        # w_s repeated over the r columns of block s, times the scaling: (B, 1, S*r) or per token (B, L, S*r)
        w = (w * self.scaling).repeat_interleave(r, dim=-1)
        return mix, A, B, (w[:, None, :] if w.dim() == 2 else w), 1.0

    def factors(self, plan: tuple) -> tuple | None:
        """(A, B, alpha) with the update = alpha (x A) B, when the plan is that plain product (no per-skill or
        per-token weights between the two products, no dropout): what `fused_update` takes."""
        mix, A, B, w, alpha = plan
        if w is not None or self.has_dropout:
            return None
        return (A, B, alpha) if mix == "weights" else (A.t(), B.t(), alpha)

    def apply_plan(self, x: torch.Tensor, plan: tuple) -> tuple[torch.Tensor, float]:
        """(delta, alpha): the update before the leftover scale alpha (folded into the residual add by the caller)."""
        mix, A, B, w, alpha = plan
        if self.has_dropout:
            x = self.dropout(x)
        if x.dtype != A.dtype:
            x = x.to(A.dtype)
        squeeze = x.dim() == 2
        if squeeze:
            x = x.unsqueeze(1)
        if mix == "weights":
            out = torch.bmm(torch.bmm(x, A), B)
        else:
            h = F.linear(x, A)  # (B, L, S*r)
            if w is not None:
                h = h * w
            out = F.linear(h, B)
        return (out.squeeze(1) if squeeze else out), alpha

"""Generation and language-model metrics for MoA (its slides' Tables 2 and 8): BLEU and perplexity."""
from __future__ import annotations

import math

import sacrebleu
import torch


def bleu(predictions: list[str], references: list[list[str]]) -> float:
    """sacrebleu corpus BLEU (default 13a tokenisation), every reference of an instance used; 0-100."""
    if not predictions:
        return 0.0
    width = max(len(r) for r in references)
    streams = [[refs[i] if i < len(refs) else None for refs in references] for i in range(width)]
    return round(sacrebleu.corpus_bleu(predictions, streams).score, 4)


def token_nll(logits: torch.Tensor, labels: torch.Tensor, shift: bool) -> tuple[float, int]:
    """Summed negative log-likelihood of the labelled tokens (label -100 = ignored) and their count.

    shift: decoder-only models predict token t+1 from position t."""
    if shift:
        logits, labels = logits[:, :-1], labels[:, 1:]
    mask = labels != -100
    nll = torch.nn.functional.cross_entropy(logits[mask].float(), labels[mask], reduction="sum")
    return float(nll), int(mask.sum())


def perplexity(nll_sum: float, n_tokens: int) -> float:
    """exp of the mean token NLL (per target token, eos included)."""
    return round(math.exp(nll_sum / n_tokens), 4) if n_tokens else float("nan")

"""Metrics: Super-NI EM/ROUGE as the official evaluator computes them, BLEU, perplexity, router accuracy."""
from .superni import compute_metrics, exact_match, normalize_answer, rouge_scores

__all__ = ["compute_metrics", "exact_match", "normalize_answer", "rouge_scores"]

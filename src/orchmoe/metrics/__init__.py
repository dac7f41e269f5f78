"""Metrics: Super-NI EM/ROUGE as the official evaluator computes them, BLEU, perplexity, router accuracy."""
from .lm import bleu, perplexity, token_nll
from .superni import compute_metrics, exact_match, grouped_metrics, normalize_answer, rouge_scores

__all__ = ["bleu", "compute_metrics", "exact_match", "grouped_metrics", "normalize_answer", "perplexity",
           "rouge_scores", "token_nll"]

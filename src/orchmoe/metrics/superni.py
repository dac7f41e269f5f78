"""Super-NaturalInstructions metrics, matched to the official evaluator.

allenai/natural-instructions `eval/automatic/evaluation.py` (and yizhongw/Tk-Instruct `src/compute_metrics.py`):
- exact match after `normalize_answer`: lowercase, delete every character of string.punctuation, collapse
  whitespace (SQuAD's normaliser without article removal);
- ROUGE from Google's `rouge-score` with its default tokenizer (lowercase, non-[a-z0-9] -> space) and the Porter
  stemmer, F-measure; no other normalisation of the strings;
- the maximum over all references of an instance; mean over instances x 100, rounded to 4 decimals.
The official script reports exact_match and rougeL; OrchMoE's tables also show ROUGE-1 and ROUGE-Lsum, computed
the same way (rougeLsum splits sentences on newlines). The xlingual track (GPT-2 tokens, no stemmer) needs the
GPT-2 tokenizer files, so it is not computed offline; non-English outputs therefore score with the default
tokenizer, which drops non-Latin characters (documented in docs/engine.md).
"""
from __future__ import annotations

import string
from collections import defaultdict

from rouge_score import rouge_scorer

ROUGE_TYPES = ("rouge1", "rougeL", "rougeLsum")
_SCORER = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def normalize_answer(s: str) -> str:
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    return " ".join(s.split())


def exact_match(prediction: str, references: list[str]) -> float:
    return float(max(normalize_answer(prediction) == normalize_answer(r) for r in references))


def rouge_scores(prediction: str, references: list[str]) -> dict:
    best = dict.fromkeys(ROUGE_TYPES, 0.0)
    for ref in references:
        scores = _SCORER.score(target=ref, prediction=prediction)
        for k in ROUGE_TYPES:
            best[k] = max(best[k], scores[k].fmeasure)
    return best


def compute_metrics(predictions: list[str], references: list[list[str]]) -> dict:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} reference lists")
    totals = defaultdict(float)
    for pred, refs in zip(predictions, references):
        totals["exact_match"] += exact_match(pred, refs)
        for k, v in rouge_scores(pred, refs).items():
            totals[k] += v
    n = max(len(predictions), 1)
    return {k: round(100.0 * v / n, 4) for k, v in totals.items()} if predictions else \
        dict.fromkeys(("exact_match", *ROUGE_TYPES), 0.0)


def grouped_metrics(rows: list[dict]) -> dict:
    """rows: {"task", "prediction", "references"} -> {"mean": ..., "per_task": {task: ...}}; mean over instances."""
    by_task = defaultdict(list)
    for r in rows:
        by_task[r["task"]].append(r)
    return {
        "mean": compute_metrics([r["prediction"] for r in rows], [r["references"] for r in rows]),
        "per_task": {t: compute_metrics([r["prediction"] for r in rs], [r["references"] for r in rs])
                     for t, rs in sorted(by_task.items())},
    }

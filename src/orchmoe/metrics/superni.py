"""Super-NaturalInstructions metrics, matched line by line to the official evaluator.

Source: allenai/natural-instructions `eval/automatic/evaluation.py` (identical metric code in yizhongw/Tk-Instruct
`src/compute_metrics.py`):
- exact match after `normalize_answer`: lowercase, delete every character of string.punctuation, collapse
  whitespace (SQuAD v1.1's normaliser *without* article removal);
- ROUGE F-measure from Google's `rouge-score`. Default track: its default tokenizer (lowercase, non-[a-z0-9] ->
  space) with the Porter stemmer. xlingual track: GPT-2 byte-level BPE tokens with the leading "Ġ" stripped and
  no stemmer. No other normalisation of the strings before ROUGE;
- the maximum over all references of an instance; sum over instances x 100 / n, rounded to 4 decimals.
The official script reports exact_match and rougeL; OrchMoE's tables also show ROUGE-1 and ROUGE-Lsum, computed
the same way (rougeLsum splits sentences on newlines).
"""
from __future__ import annotations

import string
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

from rouge_score import rouge_scorer

from orchmoe.errors import ConfigError

ROUGE_TYPES = ("rouge1", "rougeL", "rougeLsum")
METRICS = ("exact_match", *ROUGE_TYPES)
_PUNCT = set(string.punctuation)


def normalize_answer(s: str) -> str:
    """Lower text and remove punctuation and extra whitespace (articles are kept, as in the official script)."""
    return " ".join("".join(ch for ch in s.lower() if ch not in _PUNCT).split())


def exact_match(prediction: str, references: list[str]) -> float:
    return float(max(normalize_answer(prediction) == normalize_answer(r) for r in references))


class GPTTokenizer:
    """The official xlingual tokenizer: GPT-2 BPE tokens with the leading 'Ġ' (a space marker) stripped.

    The official script loads `AutoTokenizer.from_pretrained("gpt2")`; offline we take a local folder holding the
    GPT-2 tokenizer files (vocab.json + merges.txt or tokenizer.json)."""

    def __init__(self, path):
        from transformers import AutoTokenizer

        path = Path(path)
        if not path.is_dir():
            raise ConfigError(f"xlingual tokenizer: {path} is not a folder with the GPT-2 tokenizer files")
        self.tok = AutoTokenizer.from_pretrained(str(path))

    def tokenize(self, s: str) -> list[str]:
        return [t.lstrip("Ġ") for t in self.tok.tokenize(s)]


@lru_cache(maxsize=4)
def _scorer(xlingual_tokenizer: str | None = None) -> rouge_scorer.RougeScorer:
    if xlingual_tokenizer is None:
        return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), tokenizer=GPTTokenizer(xlingual_tokenizer))


def rouge_scores(prediction: str, references: list[str], xlingual_tokenizer: str | None = None) -> dict:
    """{rouge1, rougeL, rougeLsum}: F-measure, max over references, in [0, 1]."""
    best = dict.fromkeys(ROUGE_TYPES, 0.0)
    for ref in references:
        scores = _scorer(xlingual_tokenizer).score(target=ref, prediction=prediction)
        for k in ROUGE_TYPES:
            best[k] = max(best[k], scores[k].fmeasure)
    return best


def instance_scores(prediction: str, references: list[str], xlingual_tokenizer: str | None = None) -> dict:
    if not isinstance(references, list) or not references:
        raise ValueError(f"references must be a non-empty list, got {references!r}")
    return {"exact_match": exact_match(prediction, references),
            **rouge_scores(prediction, references, xlingual_tokenizer)}


def compute_metrics(predictions: list[str], references: list[list[str]],
                    xlingual_tokenizer: str | None = None) -> dict:
    """Mean over instances x 100, rounded to 4 decimals (the official `compute_metrics`, plus ROUGE-1/Lsum).

    xlingual_tokenizer: None for the default track; a folder with GPT-2 tokenizer files for the xlingual track."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} reference lists")
    if not predictions:
        return dict.fromkeys(METRICS, 0.0)
    totals = defaultdict(float)
    for pred, refs in zip(predictions, references):
        for k, v in instance_scores(pred, refs, xlingual_tokenizer).items():
            totals[k] += v
    return {k: round(100.0 * totals[k] / len(predictions), 4) for k in METRICS}


def grouped_metrics(rows: list[dict], xlingual_tokenizer: str | None = None) -> dict:
    """rows: {"task", "prediction", "references"} -> {"mean": ..., "per_task": {task: ...}}.

    "mean" pools all instances (the official overall number); "per_task" is the official
    `compute_grouped_metrics` grouping by task."""
    by_task = defaultdict(list)
    for r in rows:
        by_task[r["task"]].append(r)

    def score(rs):
        return compute_metrics([r["prediction"] for r in rs], [r["references"] for r in rs], xlingual_tokenizer)

    return {"mean": score(rows), "per_task": {t: score(rs) for t, rs in sorted(by_task.items())}}

"""Metric parity with the official Super-NI evaluator on hand-computed cases; BLEU, perplexity, router accuracy."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from orchmoe.metrics.lm import bleu, perplexity, token_nll
from orchmoe.metrics.router import classifier_accuracy, router_accuracy
from orchmoe.metrics.superni import compute_metrics, exact_match, grouped_metrics, normalize_answer, rouge_scores
from orchmoe.training.evaluate import metrics_from_predictions


def test_normaliser_is_squad_without_article_removal():
    assert normalize_answer("The  Cat, sat!") == "the cat sat"
    assert normalize_answer("  A\tb-c  ") == "a bc"  # '-' is punctuation: deleted, not spaced
    assert exact_match("Yes.", ["no", "yes"]) == 1.0
    assert exact_match("an apple", ["apple"]) == 0.0  # articles kept


def test_rouge_uses_porter_stemmer_and_f_measure():
    # pred tokens the/cat/are/run, ref the/cat/run: LCS 3, P 3/4, R 1 -> F 6/7
    assert rouge_scores("The cats are running.", ["the cat runs"])["rougeL"] == pytest.approx(6 / 7)
    # unigram overlap 2 of 3 on both sides
    assert rouge_scores("a b d", ["a b c"])["rouge1"] == pytest.approx(2 / 3)


def test_rouge_lsum_splits_sentences_on_newlines():
    s = rouge_scores("a b\nc d", ["c d\na b"])
    assert s["rougeL"] == pytest.approx(0.5)  # LCS of a b c d / c d a b is 2
    assert s["rougeLsum"] == pytest.approx(1.0)  # union LCS per reference sentence


def test_max_over_references_mean_x100_rounded_to_4_decimals():
    assert compute_metrics(["a b"], [["x", "a b c"]])["rougeL"] == 80.0
    m = compute_metrics(["a", "b", "c"], [["a"], ["x"], ["x"]])
    assert m["exact_match"] == 33.3333 and m["rouge1"] == 33.3333
    assert compute_metrics([""], [["a"]]) == {"exact_match": 0.0, "rouge1": 0.0, "rougeL": 0.0, "rougeLsum": 0.0}
    with pytest.raises(ValueError, match="2 predictions for 1"):
        compute_metrics(["a", "b"], [["a"]])


def test_grouped_metrics_pool_instances_and_group_by_task():
    rows = [{"task": "t1", "prediction": "a", "references": ["a"]},
            {"task": "t1", "prediction": "a", "references": ["a"]},
            {"task": "t2", "prediction": "x", "references": ["y"]}]
    g = grouped_metrics(rows)
    assert g["per_task"]["t1"]["exact_match"] == 100.0 and g["per_task"]["t2"]["exact_match"] == 0.0
    assert g["mean"]["exact_match"] == 66.6667  # over instances, as the official overall number


def test_default_track_drops_non_latin_text_xlingual_track_keeps_it(tmp_path):
    assert compute_metrics(["猫"], [["猫"]])["rougeL"] == 0.0
    # a byte-level BPE tokenizer with no merges, built offline in the GPT-2 format
    from transformers import GPT2Tokenizer

    vocab = {ch: i for i, ch in enumerate(_bytes_to_unicode())}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    GPT2Tokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt")).save_pretrained(tmp_path / "gpt2")
    assert compute_metrics(["猫"], [["猫"]], xlingual_tokenizer=str(tmp_path / "gpt2"))["rougeL"] == 100.0
    # no stemmer on the xlingual track: 'runs' vs 'run' is 3 of 4 characters here, not a full match
    assert rouge_scores("runs", ["run"], str(tmp_path / "gpt2"))["rougeL"] == pytest.approx(2 * 0.75 / 1.75)


def _bytes_to_unicode() -> list[str]:
    """GPT-2's printable stand-ins for the 256 byte values (openai/gpt-2 encoder.py)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def test_bleu_uses_every_reference():
    assert bleu(["the cat sat on the mat"], [["the cat sat on the mat"]]) == pytest.approx(100.0)
    one = bleu(["a b c d e"], [["x y z w v"]])
    both = bleu(["a b c d e"], [["x y z w v", "a b c d e"]])
    assert one == 0.0 and both == pytest.approx(100.0)


def test_perplexity_from_token_nll():
    logits = torch.zeros(1, 3, 4)  # uniform over 4 tokens -> ppl 4
    labels = torch.tensor([[2, -100, 1]])
    nll, n = token_nll(logits, labels, shift=False)
    assert n == 2 and nll == pytest.approx(2 * math.log(4))
    assert perplexity(nll, n) == 4.0
    assert token_nll(logits, labels, shift=True)[1] == 1  # decoder-only: position t predicts t+1


def test_router_accuracy_and_classifier():
    assert router_accuracy([0, 1, 1, 0], [0, 1, 0, -1]) == 66.6667
    assert router_accuracy([0], [-1]) is None
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    x = rng.normal(size=(60, 5)) + 4 * np.eye(5)[y]  # separable clusters
    assert classifier_accuracy(x[::2], y[::2], x[1::2], y[1::2]) == 100.0
    assert classifier_accuracy(x, np.zeros(60, dtype=int), x, y) is None  # one class: nothing to fit


def test_metrics_recomputed_from_prediction_rows():
    rows = [{"task": "t", "prediction": "a b", "references": ["a b"], "target_nll": math.log(2), "target_tokens": 1,
             "predicted_domain": 1, "domain_id": 1},
            {"task": "t", "prediction": "c", "references": ["d"], "target_nll": math.log(8), "target_tokens": 3,
             "predicted_domain": 0, "domain_id": 1}]
    m = metrics_from_predictions(rows)
    assert m["n"] == 2 and m["mean"]["exact_match"] == 50.0
    assert m["mean"]["perplexity"] == 2.0 and m["mean"]["router_accuracy"] == 50.0

"""Router accuracy against domain labels, and a plain classifier on pooled features (MoA Table 3): pure functions
of predictions and features (the features themselves come from the model: training/evaluate.py)."""
from __future__ import annotations

import numpy as np


def router_accuracy(predicted: list[int], gold: list[int]) -> float | None:
    """Percent of examples whose predicted domain equals the label; examples without a label (-1) are skipped."""
    pairs = [(p, g) for p, g in zip(predicted, gold) if g is not None and g >= 0]
    return round(100.0 * sum(p == g for p, g in pairs) / len(pairs), 4) if pairs else None


def classifier_predictions(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                           seed: int = 0) -> np.ndarray | None:
    """Logistic regression fitted on the labelled training features -> a predicted domain per test example."""
    from sklearn.linear_model import LogisticRegression

    keep_tr = train_y >= 0
    if len(set(train_y[keep_tr].tolist())) < 2:
        return None
    clf = LogisticRegression(max_iter=2000, random_state=seed).fit(train_x[keep_tr], train_y[keep_tr])
    return clf.predict(test_x)


def classifier_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                        seed: int = 0) -> float | None:
    """Logistic regression fitted on training features -> percent accuracy on the test features."""
    keep_te = test_y >= 0
    pred = classifier_predictions(train_x, train_y, test_x, seed) if keep_te.sum() else None
    if pred is None:
        return None
    return round(100.0 * float((pred[keep_te] == test_y[keep_te]).mean()), 4)

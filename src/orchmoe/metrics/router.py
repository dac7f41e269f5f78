"""Router accuracy against domain labels, and a plain classifier on pooled features (MoA Table 3): pure functions
of predictions and features (the features themselves come from the model: training/evaluate.py)."""
from __future__ import annotations

import numpy as np


def router_accuracy(predicted: list[int], gold: list[int]) -> float | None:
    """Percent of examples whose predicted domain equals the label; examples without a label (-1) are skipped."""
    pairs = [(p, g) for p, g in zip(predicted, gold) if g is not None and g >= 0]
    return round(100.0 * sum(p == g for p, g in pairs) / len(pairs), 4) if pairs else None


def classifier_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                        seed: int = 0) -> float | None:
    """Logistic regression fitted on training features -> percent accuracy on the test features."""
    from sklearn.linear_model import LogisticRegression

    keep_tr, keep_te = train_y >= 0, test_y >= 0
    if keep_te.sum() == 0 or len(set(train_y[keep_tr].tolist())) < 2:
        return None
    clf = LogisticRegression(max_iter=2000, random_state=seed).fit(train_x[keep_tr], train_y[keep_tr])
    return round(100.0 * float((clf.predict(test_x[keep_te]) == test_y[keep_te]).mean()), 4)

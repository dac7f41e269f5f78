"""Router accuracy against domain labels, and a plain classifier on the same pooled features (MoA Table 3)."""
from __future__ import annotations

import numpy as np
import torch

from orchmoe.adapters.routing import masked_rms_norm, mean_pool, sequence_mask


def router_accuracy(predicted: list[int], gold: list[int]) -> float | None:
    """Percent of examples whose predicted domain equals the label; examples without a label (-1) are skipped."""
    pairs = [(p, g) for p, g in zip(predicted, gold) if g is not None and g >= 0]
    return round(100.0 * sum(p == g for p, g in pairs) / len(pairs), 4) if pairs else None


@torch.no_grad()
def pooled_features(model, batch: dict, layer: int = 0) -> torch.Tensor:
    """The MoA router's input: RMS-normalised hidden states entering transformer block `layer` (0 = the
    embeddings), mean-pooled over prompt tokens. For encoder-decoder models the encoder's states are used."""
    if "generation_attention_mask" in batch:  # GLM's format: context + <sop> in one pass (orchmoe.data.glm_format)
        from orchmoe.data.glm_format import forward_inputs

        kwargs = forward_inputs(batch) | {"output_hidden_states": True}
    else:
        kwargs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
                  "output_hidden_states": True}
    if getattr(model.config, "is_encoder_decoder", False):
        hidden = model.get_encoder()(**kwargs).hidden_states[layer]
    else:
        out = model(**kwargs)
        # THUDM's remote GLM has no hidden_states output; its `mems` are the same states (block inputs, then output)
        hidden = (out.hidden_states if getattr(out, "hidden_states", None) is not None else out.mems)[layer]
    return mean_pool(masked_rms_norm(hidden.float()), sequence_mask(hidden, batch["prompt_mask"])).cpu()


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

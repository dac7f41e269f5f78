"""Seed every random number generator the project uses, in one place."""
from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    # PYTHONHASHSEED is not set here: it only takes effect when the interpreter starts, so setting it now would do
    # nothing. Cross-process determinism is checked instead: tests/integration compares two runs byte for byte.

"""Progress for hours-long jobs: a tqdm bar on a terminal; in a log file one plain line every `every` steps.

tqdm writes carriage-return redraws, which a log file keeps as one line per redraw; a job under Snakemake or SLURM
writes to a file, so there it prints whole lines instead, at the same pace as the training log.
"""
from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm


class LogLines:
    """The part of tqdm's interface the jobs use (update, set_postfix, close), as one line per `every` steps."""

    def __init__(self, total: int, desc: str, initial: int = 0, every: int = 1):
        self.total, self.desc, self.n, self.every = total, desc, initial, max(1, every)
        self.postfix, self.start = "", time.time()

    def set_postfix(self, refresh: bool = True, **values) -> None:
        self.postfix = " ".join(f"{k}={v}" for k, v in values.items())

    def update(self, k: int = 1) -> None:
        self.n += k
        if self.n // self.every > (self.n - k) // self.every or self.n == self.total:  # crossed a multiple of every
            print(f"{self.desc}: {self.n}/{self.total} ({100 * self.n // max(1, self.total)}%) "
                  f"{time.time() - self.start:.1f}s {self.postfix}".rstrip(), file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


def progress(total: int, desc: str, initial: int = 0, every: int | None = None):
    """A bar for a terminal, or LogLines (default: every 10% of `total`) when stderr is not one."""
    if sys.stderr.isatty():
        return tqdm(total=total, initial=initial, desc=desc, mininterval=1)
    return LogLines(total, desc, initial, every or max(1, total // 10))

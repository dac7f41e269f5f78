"""Skill recovery: do tasks that share skills get similar learned routing? (OrchMoE Figure 3, measured.)

Ground truth: each task's full skill set (the built-in suite's skills.json). Two measures per routed run:
- spearman: rank correlation, over all task pairs, between the similarity of their learned routing vectors
  (minus the Euclidean distance) and the overlap of their skill sets (Jaccard). 0 = no relation, 1 = same order.
- ari: adjusted Rand index between average-linkage clusterings of the learned vectors and of the ground-truth
  skill-overlap distance (1 - Jaccard), both cut at k = the number of distinct skills.
Near-uniform but consistently ordered routing still scores: both measures are invariant to the vectors' scale.
"""
from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist, squareform
from scipy.stats import spearmanr
from sklearn.metrics import adjusted_rand_score


def jaccard(a, b) -> float:
    a, b = set(a), set(b)
    return len(a & b) / len(a | b) if a | b else 1.0


def skill_overlap(tasks: list[str], skills: dict) -> np.ndarray:
    """(n, n) Jaccard similarity of the tasks' ground-truth skill sets."""
    return np.array([[jaccard(skills[a], skills[b]) for b in tasks] for a in tasks])


def skill_recovery(tasks: list[str], vectors: np.ndarray, skills: dict) -> dict:
    """tasks: n task names; vectors: (n, k) learned routing per task; skills: task -> list of skills."""
    vectors = np.asarray(vectors, dtype=float)
    if len(tasks) != len(vectors) or len(tasks) < 3:
        raise ValueError(f"skill_recovery: need >= 3 tasks with one vector each (got {len(tasks)}, {len(vectors)})")
    overlap = skill_overlap(tasks, skills)
    iu = np.triu_indices(len(tasks), 1)
    dist = squareform(pdist(vectors))
    sim = -dist[iu]
    rho = spearmanr(sim, overlap[iu]).statistic if np.ptp(sim) > 0 else float("nan")
    k = len({s for t in tasks for s in skills[t]})
    k = min(k, len(tasks) - 1)
    truth = fcluster(linkage(squareform(1.0 - overlap, checks=False), "average"), k, "maxclust")
    learned = fcluster(linkage(vectors, "average", metric="euclidean"), k, "maxclust")
    return {"spearman": float(rho), "ari": float(adjusted_rand_score(truth, learned)), "n_clusters": int(k),
            "n_tasks": len(tasks)}


def routing_spread(vectors: np.ndarray) -> float:
    """Mean over routing dimensions of the sd across tasks: ~0 when every task is routed alike."""
    return float(np.asarray(vectors, dtype=float).std(axis=0).mean())

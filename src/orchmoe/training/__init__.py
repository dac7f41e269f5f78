"""Training (resumable, adapter-only checkpoints) and evaluation (generation + metrics) with provenance."""

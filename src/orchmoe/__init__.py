"""orchmoe: multi-adapter parameter-efficient fine-tuning (OrchMoE, MoA and their baselines) as a reproducible workflow."""

__version__ = "0.1.0"

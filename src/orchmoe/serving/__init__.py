"""Trained runs outside the lab: `orchmoe export` (PEFT folders) and `orchmoe route` (which exported LoRA serves a prompt)."""

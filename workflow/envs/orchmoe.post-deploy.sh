#!/usr/bin/env bash
# Snakemake runs this once, inside the new environment, from its working directory: the repository root (every
# rule's paths are relative to it). --no-deps: the environment file already holds the pinned dependencies.
set -euo pipefail
pip install --no-deps -e .

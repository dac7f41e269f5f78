#!/usr/bin/env bash
# The real-infrastructure suite: a one-node SLURM cluster up, the integration tests (SLURM profile and workflow,
# DVC, faults, the SLURM row of the bad-input catalogue), the cluster down again by pid whatever happened.
# Prints per-stage timings (pytest's summary) and the total. Run from the repository root, as root.
set -uo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)
trap 'bash .ci/slurm/down.sh' EXIT
bash .ci/slurm/up.sh || exit 1
up=$(date +%s)
PY=${PYTHON:-.venv/bin/python}
# A private basetemp: pytest prunes old runs under the shared one, which must not hit a suite in progress.
ORCHMOE_REQUIRE_SLURM=1 OMP_NUM_THREADS=1 "$PY" -m pytest -q -p no:cacheprovider -m integration --durations=0 \
    --basetemp="${TMPDIR:-/tmp}/orchmoe-integration" \
    tests/integration tests/workflow/test_ci_pipeline.py tests/test_bad_inputs.py "$@"
rc=$?
echo "integration: cluster up $((up - start)) s, tests $(( $(date +%s) - up )) s, total $(( $(date +%s) - start )) s"
exit $rc

#!/usr/bin/env bash
# The CPU demo: the whole DAG of a config (default config/demo.yaml) through Snakemake with the local profile, then
# the self-contained HTML report; prints the total wall time and where the tables, figures and report are.
# Usage: workflow/scripts/demo.sh [config/<name>.yaml] [extra snakemake args...]
set -euo pipefail
cd "$(dirname "$0")/../.."
CONFIG=${1:-config/demo.yaml}
shift || true
EXP=$(python -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['experiment'])" "$CONFIG")
start=$(date +%s)
# orchmoe warm: the DAG's ~80 short jobs import torch + transformers once, not each (docs/workflow.md)
orchmoe warm -- snakemake --profile workflow/profiles/local --configfile "$CONFIG" "$@"
mkdir -p results/report
snakemake --profile workflow/profiles/local --configfile "$CONFIG" --report "results/report/$EXP.html"
end=$(date +%s)
echo
cat "results/tables/$EXP/main.md"
echo
cat "results/tables/$EXP/study.md"
echo
cat "results/figures/$EXP/routing_summary.md" 2>/dev/null || cat "results/figures/$EXP/task_clustering.md"
echo
echo "workflow finished in $((end - start)) s wall time (config $CONFIG)"
echo "tables:  results/tables/$EXP/   (main, params: .csv .md .tex; study: .csv .md; metrics_long.csv; summary.json)"
echo "figures: results/figures/$EXP/  (training_curves, score_vs_params, task_clustering, router_accuracy, router_diagnostics: .png .pdf;"
echo "         skill_recovery, routing_summary, router_diagnostics: .md .csv)"
echo "report:  results/report/$EXP.html"
echo "trace a number: orchmoe trace --tables results/tables/$EXP --base <base> --run orchmoe --metric rougeLsum"

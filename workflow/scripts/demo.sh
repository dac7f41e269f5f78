#!/usr/bin/env bash
# The CPU demo: the whole DAG of config/demo.yaml through Snakemake, then the HTML report; prints the wall time.
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$(date +%s)
snakemake --cores "${CORES:-2}" --configfile config/demo.yaml "$@"
snakemake --cores 1 --configfile config/demo.yaml --report results/report-demo.html
end=$(date +%s)
echo
cat results/tables/demo/main.md
echo
echo "task clustering vs ground truth (adjusted Rand index):"
cat results/figures/demo/task_clustering.csv
echo
echo "demo finished in $((end - start)) s"
echo "tables:  results/tables/demo/   (main.csv, main.md, main.tex, metrics_long.csv)"
echo "figures: results/figures/demo/  (training_curves, score_vs_params, task_clustering: .png + .pdf)"
echo "report:  results/report-demo.html"
echo "trace a number: orchmoe trace --tables results/tables/demo --base tiny-t5 --method orchmoe --metric rougeLsum"

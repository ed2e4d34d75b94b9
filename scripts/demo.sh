#!/usr/bin/env bash
# The demo, from a fresh Debian 12 machine (as root): bring the sandbox cluster up,
# provision it as a researcher would provision dragon2, train cesres-mini on its gpu
# partition, bring the results back and plot the training curves.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/bootstrap.sh
source scripts/bootstrap.sh

results="${CESRES_DEMO_RESULTS:-$PWD/results/demo}"

step() { printf '\n==> %s\n' "$*"; }

step "Bring the sandbox cluster up (Slurm, Lmod, login node behind a gateway)"
cesres-ctl sandbox up
cesres-ctl sandbox status

step "Provision the sandbox like dragon2: modules, git, the CESReS code, the virtualenv"
cesres-ctl setup --cluster sandbox

step "Train cesres-mini (the CESReS stand-in) on the gpu partition and wait for it"
# The config names its data relative to the checkout, as the real model expects: run from there.
# --wait follows the job, then fetches its results into --dest.
run_json="$(cd sandbox/cesres-mini &&
    cesres-ctl train configs/demo.yaml --cluster sandbox --name demo --wait --dest "$results" --json)"
run_id="$(python -c 'import json, sys; print(json.loads(sys.argv[1])["run_id"])' "$run_json")"
cesres-ctl status "$run_id"
cesres-ctl logs "$run_id" | tail -n 5

step "Plot the training curves"
cesres-ctl plot "$run_id" --no-fetch --output "$results/training_curves.png"

step "Done"
echo "run:      $run_id (cesres-ctl logs $run_id shows the job's log)"
echo "results:  $results/results"
echo "plot:     $results/training_curves.png"

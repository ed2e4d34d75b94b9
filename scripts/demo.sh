#!/usr/bin/env bash
# The demo, from a fresh Debian 12 machine (as root): bring the sandbox cluster up, provision it as a
# researcher would provision dragon2 (the real CESReS code, its real requirements file, the model), train
# the real CESReS with its own template_config.yaml on the sandbox (on the CPU: it has no GPU), bring the
# results back and plot the training curves.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/bootstrap.sh
source scripts/bootstrap.sh

results="${CESRES_DEMO_RESULTS:-$PWD/results/demo}"
checkout="$(dirname "$results")/INGInious-CESReS"

step() { printf '\n==> %s\n' "$*"; }

# The demo's own settings (section 3 of docs/ceci-guide.md): the sandbox as its cluster, with its own code
# and virtualenv there, so that nothing the test suite leaves in the sandbox's ~/cesres (cesres-mini, local
# commits) stops it, and nothing of yours in ~/.config/cesres-ctl changes it.
CESRES_CTL_CONFIG="$(dirname "$results")/cesres-ctl-demo.yml"
export CESRES_CTL_CONFIG
mkdir -p "$(dirname "$results")"
cat > "$CESRES_CTL_CONFIG" <<'YAML'
default_cluster: sandbox
clusters:
  sandbox:
    cesres_root: ~/cesres-demo
    cesres_venv: ~/cesres-demo-env
YAML

step "Bring the sandbox cluster up (Slurm, Lmod with dragon2's modules, login node behind a gateway)"
cesres-ctl sandbox up
cesres-ctl sandbox status

step "Provision the sandbox like dragon2: modules, git, the CESReS code, its requirements, the model"
cesres-ctl setup --cluster sandbox

step "The researcher's checkout of CESReS (the fork the sandbox publishes), its demo data where the template names it"
if [ ! -d "$checkout/.git" ]; then
    git clone --quiet sandbox/cesres-fork/INGInious-CESReS.bundle "$checkout"
fi
mkdir -p "$checkout/dataset"
cp "$checkout"/demo/{train,validation,test}.txt "$checkout/dataset/"

step "Train the real CESReS with its template_config.yaml, unchanged, on the CPU, and wait for it"
# -d cpu: the sandbox has no GPU (the template says cuda); the batch partition has none either.
# --wait follows the job, then fetches its results into --dest; stdout is the run id alone (the rest: stderr).
run_id="$(cd "$checkout" &&
    cesres-ctl train template_config.yaml --cluster sandbox --name demo --partition batch --gpus 0 \
        --wait --dest "$results" -- -d cpu)"
cesres-ctl status "$run_id"
cesres-ctl logs "$run_id" | tail -n 5

step "Plot the training curves"
cesres-ctl plot "$run_id" --no-fetch --output "$results/training_curves.png"

step "Done"
echo "run:      $run_id (cesres-ctl logs $run_id shows the job's log)"
echo "results:  $results/results"
echo "plot:     $results/training_curves.png"

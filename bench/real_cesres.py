"""Issue 17's rows, measured side by side in one run against the sandbox, with the real CESReS (the fork the
sandbox publishes) and its real installation/CECI_requirements.txt:

1. `cesres-ctl setup` from nothing vs the seed's steps by hand on the same sandbox: one login shell that loads
   the modules, clones the code, runs `virtualenv --system-site-packages`, installs the file in the subsets
   that install (without checklist and allennlp first, then the whole file; torch left to its module) and
   caches the model with the venv's transformers. Goal: at most 1.1x. Both start from nothing but the same
   pip cache (the cluster user's, warm once a first install filled it): a warm-up install runs first.
2. `cesres-ctl setup` after one pin of the file changed vs from nothing. Goal: at most 0.2x.
3. The job's overhead with the real module set: from the job script's start to the first line of the program
   (an entry point that prints the time as its first statement). Goal: at most 5 s.

    .venv/bin/python bench/real_cesres.py [--repeat 1]
"""

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from cesres_ctl import paths  # noqa: E402
from cesres_ctl.inventory import Inventory  # noqa: E402

ROOT, VENV = "bench-real", "bench-real-env"
MODEL = "Enoch/graphcodebert-py"
GOALS = {"by hand": 1.1, "one pin": 0.2}
OVERHEAD_GOAL_S = 5.0

BY_HAND = """
set -e
root=$1 venv=$2 repo=$3 endpoint=$4 model=$5 release=$6
shift 6
module purge; module load "$release"; module load "$@"
git clone --quiet "$repo" "$root"
virtualenv --quiet --system-site-packages "$venv"
. "$venv/bin/activate"
file="$root/installation/CECI_requirements.txt"
# The subsets that install: checklist's setup script needs the Jupyter stack installed first (allennlp pulls
# checklist in), and the PyTorch module's torch stays (the file pins 1.12.0, the module gives 1.12.1).
grep -vE '^(checklist|allennlp|torch)==' "$file" > "$venv/first.txt"
grep -vE '^torch==' "$file" > "$venv/all.txt"
pip install --quiet --disable-pip-version-check -r "$venv/first.txt"
pip install --quiet --disable-pip-version-check -r "$venv/all.txt"
HF_HOME=~/.cache/huggingface-bench HF_ENDPOINT=$endpoint USE_TF=0 python -c "
import sys
from transformers import AutoConfig, AutoModel, AutoTokenizer
for load in (AutoConfig, AutoTokenizer, AutoModel):
    load.from_pretrained(sys.argv[1])
" "$model"
"""

FIRST_LINE = "import time\nprint('bench-first-line', repr(time.time()), flush=True)\n"


def ssh_argv(command: str) -> list[str]:
    config = paths.sandbox_root() / "ssh" / "ssh_config"
    return ["ssh", "-F", str(config), "cesres-sandbox", command]


def on_cluster(command: str) -> str:
    done = subprocess.run(ssh_argv(command), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"failed on the sandbox: {command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done.stdout


def timed(argv: list[str], **kwargs: object) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed: {shlex.join(argv)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return elapsed


def reset() -> None:
    # The Jupyter files are what the seed's steps write into the home (checklist's setup script): a test checks
    # that setup writes none.
    on_cluster(f"rm -rf ~/{ROOT} ~/{VENV} ~/.cache/huggingface-bench ~/.jupyter ~/.local/share/jupyter")


def setup_argv(extra: dict[str, str] | None = None) -> list[str]:
    variables = {
        "cesres_root": f"~/{ROOT}",
        "cesres_venv": f"~/{VENV}",
        "cesres_hf_home": "~/.cache/huggingface-bench",
        **(extra or {}),
    }
    return [sys.executable, "-m", "cesres_ctl", "setup", "--cluster", "sandbox", "-e", json.dumps(variables)]


def by_hand_argv() -> list[str]:
    values, _ = Inventory().resolve(
        "sandbox",
        {},
        ["cesres_cluster_modules", "cesres_cluster_git_module", "cesres_cluster_modules_release", "cesres_repo_url"],
    )
    modules = [*values["cesres_cluster_modules"], values["cesres_cluster_git_module"]]
    words = ["bash", "-lc", BY_HAND, "by-hand", ROOT, VENV, values["cesres_repo_url"], "http://127.0.0.1:6820", MODEL]
    return ssh_argv(shlex.join([*words, values["cesres_cluster_modules_release"], *modules]))


def one_pin_changed() -> float:
    """setup with a copy of the file where one pin moved (tqdm 4.66.1 -> 4.66.0), after a setup from nothing."""
    file = f"~/{ROOT}/installation/CECI_requirements.txt"
    changed = f"~/{ROOT}/installation/CECI_requirements-bench.txt"
    on_cluster(f"sed 's/^tqdm==4.66.1$/tqdm==4.66.0/' {file} > {changed} && ! cmp -s {file} {changed}")
    return timed(setup_argv({"cesres_venv_requirements_file": changed}), cwd=PROJECT)


def job_overhead(workdir: Path) -> float:
    """Seconds from the job script's start to the first statement of its entry point (the real modules)."""
    on_cluster(f"printf %s {shlex.quote(FIRST_LINE)} > ~/{ROOT}/bench_first_line.py")
    bundle = PROJECT / "sandbox" / "cesres-fork" / "INGInious-CESReS.bundle"
    checkout = workdir / "checkout"
    subprocess.run(["git", "clone", "--quiet", str(bundle), str(checkout)], check=True)
    (checkout / "dataset").mkdir()
    for name in ("train.txt", "validation.txt", "test.txt"):
        (checkout / "dataset" / name).write_bytes((checkout / "demo" / name).read_bytes())
    env = {**os.environ, "XDG_STATE_HOME": str(workdir / "state")}
    argv = [
        sys.executable, "-m", "cesres_ctl", "train", "template_config.yaml", "--cluster", "sandbox", "--new",
        "--set", f"root=~/{ROOT}", "--set", f"venv=~/{VENV}", "--set", "hf_home=~/.cache/huggingface-bench",
        "--set", "entry_point=bench_first_line.py", "--partition", "batch", "--gpus", "0", "--wait",
        "--dest", str(workdir / "run"), "--", "-d", "cpu",
    ]  # fmt: skip
    timed(argv, cwd=checkout, env={**env, "PYTHONPATH": str(PROJECT)})
    log = next((workdir / "run").glob("slurm-*.out")).read_text()
    started = re.search(r"^cesres-job: run \S+, job \S+ on \S+ at (\S+)Z$", log, re.MULTILINE)
    first = re.search(r"^bench-first-line (\S+)$", log, re.MULTILINE)
    if not started or not first:
        sys.exit(f"cannot read the job's times from its log:\n{log[-3000:]}")
    start = datetime.strptime(started[1], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC).timestamp()
    return float(first[1]) - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    # The pip cache warm, as a researcher's second install (and the seed's steps by hand) would find it.
    reset()
    print("warm-up: setup from nothing ...", flush=True)
    timed(setup_argv(), cwd=PROJECT)
    product: list[float] = []
    hand: list[float] = []
    pin: list[float] = []
    for _ in range(args.repeat):
        reset()
        hand.append(timed(by_hand_argv()))
        reset()
        product.append(timed(setup_argv(), cwd=PROJECT))
        pin.append(one_pin_changed())
    with tempfile.TemporaryDirectory(prefix="bench-real-") as tmp:
        overhead = job_overhead(Path(tmp))
    reset()
    setup_s, hand_s, pin_s = (statistics.median(values) for values in (product, hand, pin))
    print(f"{'row':44} {'seconds':>9} {'ratio':>7} {'goal':>6}")
    print(f"{'setup from nothing, the real file':44} {setup_s:9.1f}")
    print(f"{'the seed steps by hand, same sandbox':44} {hand_s:9.1f}")
    print(f"{'setup / by hand':44} {'':9} {setup_s / hand_s:7.2f} {GOALS['by hand']:6.2f}")
    print(f"{'setup after one pin changed':44} {pin_s:9.1f}")
    print(f"{'one pin / from nothing':44} {'':9} {pin_s / setup_s:7.2f} {GOALS['one pin']:6.2f}")
    print(f"{'job overhead to the first line (s)':44} {overhead:9.2f} {'':7} {OVERHEAD_GOAL_S:6.1f}")


if __name__ == "__main__":
    main()

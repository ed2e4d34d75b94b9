"""The options the run commands share, declared once so that they read the same everywhere: the run's
name, resources and cluster paths (train, sweep, predict), and how the other commands name a run."""

from typing import Any

import typer

Partition = typer.Option(None, "--partition", "-p", help="Slurm partition.")
Gpus = typer.Option(None, "--gpus", help="GPUs (--gres=gpu:N).")
Time = typer.Option(None, "--time", "-t", help="Time limit, HH:MM:SS or D-HH:MM:SS.")
Cpus = typer.Option(None, "--cpus", help="CPUs per task.")
Mem = typer.Option(None, "--mem", help="Memory per node, e.g. 16G.")
Account = typer.Option(None, "--account", help="Slurm account.")
Qos = typer.Option(None, "--qos", help="Slurm QoS.")
Mail = typer.Option(None, "--mail", help="Mail address for job notifications.")
Sbatch = typer.Option([], "--sbatch", help="Extra sbatch option (--option=value); repeatable.")
Set = typer.Option(
    [], "--set", help="Cluster path for this run: root, venv, hf_home or entry_point (KEY=VALUE); repeatable."
)
Name = typer.Option(None, "--name", "-n", help="Run name (default: the config file's name).")

RunArgument = typer.Argument(..., help="Run id, a unique prefix of it, its job id, or its name (latest run).")
# A run id names its cluster: here --cluster only narrows the search, and has no default.
RunCluster = typer.Option(None, "--cluster", "-C", help="Only look for the run on this cluster.")
Json = typer.Option(False, "--json", help="Print JSON (fields: docs/runs.md).")
Dest = typer.Option(None, "--dest", "-d", help="Local directory (default: ./cesres-runs/RUN).")
WaitDest = typer.Option(
    None, "--dest", "-d", help="With --wait: where to fetch the results (default: ./cesres-runs/RUN)."
)
NoFetch = typer.Option(False, "--no-fetch", help="Use the results fetched earlier as they are.")


def resources(
    partition: str | None,
    gpus: int | None,
    time_limit: str | None,
    cpus: int | None,
    mem: str | None,
    account: str | None,
    qos: str | None,
    mail: str | None,
    sbatch: list[str],
) -> dict[str, Any]:
    """The resource overrides of the command line (None: the cluster's default)."""
    return {
        "partition": partition,
        "gpus": gpus,
        "time": time_limit,
        "cpus_per_task": cpus,
        "mem": mem,
        "account": account,
        "qos": qos,
        "mail_user": mail,
        "extra_sbatch": list(sbatch) or None,
    }

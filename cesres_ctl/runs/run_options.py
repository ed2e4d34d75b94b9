"""The options the run commands share, declared once so that they read the same everywhere: the run's
name, resources and cluster paths (train, sweep, predict), and how the other commands name a run."""

from typing import Any

import typer

from cesres_ctl import completion

Partition = typer.Option(None, "--partition", "-p", metavar="PARTITION", help="Slurm partition.")
Gpus = typer.Option(None, "--gpus", metavar="N", help="GPUs (--gres=gpu:N).")
Time = typer.Option(None, "--time", "-t", metavar="TIME", help="Time limit, HH:MM:SS or D-HH:MM:SS.")
Cpus = typer.Option(None, "--cpus", metavar="N", help="CPUs per task.")
Mem = typer.Option(None, "--mem", metavar="MEM", help="Memory per node, e.g. 16G.")
Account = typer.Option(None, "--account", metavar="ACCOUNT", help="Slurm account.")
Qos = typer.Option(None, "--qos", metavar="QOS", help="Slurm QoS.")
Mail = typer.Option(None, "--mail", metavar="ADDRESS", help="Mail address for job notifications.")
Sbatch = typer.Option([], "--sbatch", metavar="OPTION", help="Extra sbatch option (--option=value); repeatable.")
Set = typer.Option(
    [],
    "--set",
    metavar="KEY=VALUE",
    help="Cluster path for this run: root, venv, hf_home or entry_point (KEY=VALUE); repeatable.",
)
Name = typer.Option(None, "--name", "-n", metavar="NAME", help="Run name (default: the config file's name).")

RunArgument = typer.Argument(
    ...,
    metavar="RUN",
    help="Run id, a unique prefix of it, its job id, or its name (latest run).",
    autocompletion=completion.runs,
)
# status, logs, fetch, cancel, plot: a sweep's points too.
RunOrSweepArgument = typer.Argument(
    ...,
    metavar="RUN|SWEEP",
    help="Run id, a unique prefix of it, its job id, or its name (latest run); or a sweep id (every point).",
    autocompletion=completion.runs_and_sweeps,
)
# A run id names its cluster: here --cluster only narrows the search, and has no default.
RunCluster = typer.Option(None, "--cluster", "-C", metavar="CLUSTER", help="Only look for the run on this cluster.")
Json = typer.Option(False, "--json", help="Print JSON (fields: docs/runs.md).")
Dest = typer.Option(
    None,
    "--dest",
    "-d",
    metavar="DIR",
    help="Local directory (default: ./cesres-runs/RUN).",
    autocompletion=completion.files,
)
WaitDest = typer.Option(
    None,
    "--dest",
    "-d",
    metavar="DIR",
    help="With --wait: where to fetch the results (default: ./cesres-runs/RUN).",
    autocompletion=completion.files,
)
DryRun = typer.Option(False, "--dry-run", help="Print the job script and the copies; submit nothing.")
Wait = typer.Option(False, "--wait", "-w", help="Follow the job until it ends, then fetch its results.")
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

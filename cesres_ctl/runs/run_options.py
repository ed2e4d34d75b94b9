"""The options the run commands share, declared once so that they read the same everywhere: the run's
name, resources and cluster paths (train, sweep, predict), and how the other commands name a run."""

import functools
import inspect
from collections.abc import Callable
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


# The parameter of a command that resource_options replaces with the resource options.
RESOURCES: Any = None
# The resource options, declared once: parameter name -> (its type, the option, its key in the overrides).
RESOURCE_OPTIONS: dict[str, tuple[Any, Any, str]] = {
    "partition": (str | None, Partition, "partition"),
    "gpus": (int | None, Gpus, "gpus"),
    "time_limit": (str | None, Time, "time"),
    "cpus": (int | None, Cpus, "cpus_per_task"),
    "mem": (str | None, Mem, "mem"),
    "account": (str | None, Account, "account"),
    "qos": (str | None, Qos, "qos"),
    "mail": (str | None, Mail, "mail_user"),
    "sbatch": (list[str], Sbatch, "extra_sbatch"),
}


def resource_options(*names: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command the resource options `names` (all of RESOURCE_OPTIONS without names), in place of its
    `overrides` parameter, which gets them as the resolver takes them: {key: value or None (the cluster's default)}.
    """
    chosen = names or tuple(RESOURCE_OPTIONS)

    def declare(command: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(command)
        options = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=RESOURCE_OPTIONS[name][1], annotation=kind)
            for name in chosen
            for kind in [RESOURCE_OPTIONS[name][0]]
        ]
        parameters: list[inspect.Parameter] = []
        for parameter in signature.parameters.values():
            parameters += (
                options if parameter.name == "overrides" else [parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY)]
            )

        @functools.wraps(command)
        def with_overrides(**kwargs: Any) -> None:
            overrides = {RESOURCE_OPTIONS[name][2]: kwargs.pop(name) for name in chosen}
            if "extra_sbatch" in overrides:
                overrides["extra_sbatch"] = list(overrides["extra_sbatch"]) or None
            command(**kwargs, overrides=overrides)

        with_overrides.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        return with_overrides

    return declare

"""Sweeps without a cluster: the grid, its checks (one line each, before anything is sent), the points'
configs and ids, the registry's sweep columns, compare's rows and the data of the sweep plot."""

import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from cesres_ctl.errors import CesresError
from cesres_ctl.runs import compare, sweep
from cesres_ctl.runs import config as configs
from cesres_ctl.runs.registry import Registry, Run, now
from tests.conftest import MINI

CONFIG = MINI / "configs" / "demo.yaml"


@pytest.mark.parametrize(
    ("text", "value"),
    [("8", 8), ("1e-5", 1e-5), ("3.0e-5", 3e-5), ("true", True), ("False", False), ("-loss", "-loss"), ("nan", "nan")],
)
def test_values_on_the_command_line_are_numbers_booleans_or_text(text, value):
    assert sweep.scalar(text) == value and type(sweep.scalar(text)) is type(value)


def test_the_grid_is_every_combination_first_axis_slowest():
    axes = sweep.parse_vary(["TRAINER.learning_rate=1e-5,3e-5", "CONFIG.batch_size=8,16"])
    points = sweep.grid(axes, max_points=64)
    assert points == [
        {"TRAINER.learning_rate": 1e-5, "CONFIG.batch_size": 8},
        {"TRAINER.learning_rate": 1e-5, "CONFIG.batch_size": 16},
        {"TRAINER.learning_rate": 3e-5, "CONFIG.batch_size": 8},
        {"TRAINER.learning_rate": 3e-5, "CONFIG.batch_size": 16},
    ]


@pytest.mark.parametrize(
    ("vary", "message"),
    [
        ([], "an empty grid"),
        (["TRAINER.learning_rate="], "use SECTION.key=VALUE"),
        (["learning_rate"], "use SECTION.key=VALUE"),
        (["CONFIG.batch_size=8", "CONFIG.batch_size=16"], "varied twice"),
        (["CONFIG.training=a.txt,b.txt"], "cannot vary"),
        (["CONFIG.batch_size=" + ",".join(map(str, range(1, 66)))], "65 points, more than the limit of 64"),
    ],
)
def test_bad_grids_are_one_line(vary, message):
    with pytest.raises(CesresError, match=message) as info:
        sweep.grid(sweep.parse_vary(vary), max_points=64)
    assert "\n" not in str(info.value)


def test_a_vary_file_gives_more_axes_and_is_checked(tmp_path):
    good = tmp_path / "grid.yaml"
    good.write_text("TRAINER.learning_rate: [1.0e-5, 3.0e-5]\nCONFIG.batch_size: [8]\n")
    assert [axis.key for axis in sweep.parse_vary_file(good)] == ["TRAINER.learning_rate", "CONFIG.batch_size"]
    for text, message in (
        ("[1, 2]", "must be a mapping"),
        ("CONFIG.batch_size: 8", "non-empty list"),
        ("a: [", "not valid YAML"),
    ):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(CesresError, match=message):
            sweep.parse_vary_file(bad)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("TRAINER.lerning_rate", 0.1, "has no key lerning_rate \\(did you mean learning_rate\\?\\)"),
        ("TRAIN.learning_rate", 0.1, "SECTION one of"),
        ("CONFIG.batch_size", 8.5, "is not of the kind of the config's 8 \\(int\\)"),
        ("CONFIG.batch_size", "big", "is not of the kind"),
        ("TRAINER.validation_metric", 3, "is not of the kind"),
    ],
)
def test_a_point_sets_only_existing_keys_with_values_of_their_kind(key, value, message):
    data = yaml.safe_load(CONFIG.read_text())
    with pytest.raises(CesresError, match=message):
        configs.set_value(data, key, value, CONFIG)


def test_a_point_rewrites_its_own_config_and_an_int_may_replace_a_float():
    config = configs.load(CONFIG, cwd=MINI, values={"TRAINER.learning_rate": 1, "CONFIG.batch_size": 16})
    rewritten = yaml.safe_load(config.rewritten_text)
    assert rewritten["TRAINER"]["learning_rate"] == 1 and rewritten["CONFIG"]["batch_size"] == 16
    # The config's own checks still apply to the point's values.
    with pytest.raises(CesresError, match="batch_size"):
        configs.load(CONFIG, cwd=MINI, values={"CONFIG.batch_size": 0})


def _prepare(monkeypatch, vary, **kwargs):
    monkeypatch.chdir(MINI)
    defaults = {"cluster": "sandbox", "name": None, "overrides": {"partition": "batch"}, "model_args": ["-d", "cpu"]}
    defaults.update(new=False, settings=[], max_parallel=None)
    defaults.update(kwargs)
    return sweep.prepare(Path("configs/demo.yaml"), sweep.parse_vary(vary), **defaults)


def test_each_point_is_a_run_of_its_own_and_the_sweep_is_the_same_again(monkeypatch):
    first = _prepare(monkeypatch, ["TRAINER.learning_rate=1e-3,3e-3", "CONFIG.batch_size=8,16"])
    assert len(first.points) == 4 and first.max_parallel == 4
    assert len({point.spec.spec_hash() for point in first.points}) == 4
    again = _prepare(monkeypatch, ["TRAINER.learning_rate=1e-3,3e-3", "CONFIG.batch_size=8,16"])
    assert again.sweep_hash() == first.sweep_hash()
    assert (
        _prepare(monkeypatch, ["TRAINER.learning_rate=1e-3,3e-3", "CONFIG.batch_size=8,16"], new=True).sweep_hash()
        != first.sweep_hash()
    )
    variables = sweep.extravars(first, staged=Path("/nowhere"))
    assert [p["spec_hash"] for p in variables["cesres_job_points"]] == [p.spec.spec_hash() for p in first.points]
    assert variables["cesres_job_sweep_hash"] == first.sweep_hash()


def test_max_parallel_is_checked_against_the_partition(monkeypatch):
    from cesres_ctl.runs import cluster as clusters

    loaded = clusters.load("sandbox")
    limited = {
        **loaded.partitions,
        "batch": loaded.partitions["batch"].__class__(**{**loaded.partitions["batch"].__dict__, "max_jobs": 2}),
    }
    monkeypatch.setattr(clusters, "load", lambda name: loaded.__class__(**{**loaded.__dict__, "partitions": limited}))
    with pytest.raises(CesresError, match="--max-parallel 3 is above partition batch's limit of 2"):
        _prepare(monkeypatch, ["CONFIG.batch_size=8,16,32"], max_parallel=3)
    assert _prepare(monkeypatch, ["CONFIG.batch_size=8,16,32"], max_parallel=2).max_parallel == 2
    with pytest.raises(CesresError, match="--max-parallel must be 1 or more"):
        _prepare(monkeypatch, ["CONFIG.batch_size=8,16"], max_parallel=0)


def test_a_registry_of_schema_1_gains_the_sweep_columns(tmp_path):
    path = tmp_path / "runs.sqlite"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE runs (cluster TEXT NOT NULL, run_id TEXT NOT NULL, name TEXT NOT NULL, job_id TEXT NOT NULL, "
        "remote_dir TEXT NOT NULL, config TEXT NOT NULL DEFAULT '', resources TEXT NOT NULL DEFAULT '{}', "
        "code_version TEXT NOT NULL DEFAULT '', submitted_at TEXT NOT NULL, state TEXT NOT NULL, "
        "exit_code TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '', elapsed TEXT NOT NULL DEFAULT '', "
        "updated_at TEXT NOT NULL, local_dir TEXT NOT NULL DEFAULT '', jobs TEXT NOT NULL DEFAULT '[]', "
        "PRIMARY KEY (cluster, run_id))"
    )
    row = ("sandbox", "old-0123456789", "old", "7", "/r", "", "{}", "", "x", "COMPLETED", "0", "", "", "x", "", '["7"]')
    old.execute(f"INSERT INTO runs VALUES ({', '.join('?' * len(row))})", row)
    old.execute("PRAGMA user_version = 1")
    old.commit()
    old.close()
    registry = Registry(path)
    assert registry.get("sandbox", "old-0123456789").sweep_id == ""
    for index, lr in enumerate((0.1, 0.2)):
        run = Run("sandbox", f"p-{index:010d}", "p", f"9_{index}", "/r", now(), "PENDING")
        run.sweep_id, run.point, run.point_index = "sweep-p-0123456789", {"TRAINER.learning_rate": lr}, index
        registry.record_submission(run)
    points = registry.sweep("sweep-p-01")
    assert [run.point["TRAINER.learning_rate"] for run in points] == [0.1, 0.2]
    assert registry.sweep("p-00") == [] and registry.sweep("swe") == []  # a run's prefix, too short a prefix


def test_compare_rows_come_from_the_runs_files_and_sort_best_first(tmp_path):
    rows = []
    for index, (loss, fscore) in enumerate(((0.5, 0.2), (0.3, 0.6))):
        results = tmp_path / f"r{index}" / "results"
        results.mkdir(parents=True)
        for epoch in range(2):
            metrics = {"epoch": epoch, "validation_loss": loss + 0.1 * (1 - epoch), "best_epoch": 1}
            metrics.update(best_validation_loss=loss, best_validation_fscore=fscore)
            (results / f"metrics_epoch_{epoch}.json").write_text(json.dumps(metrics))
        (results / compare.TEST_RESULTS).write_text(json.dumps({"loss": loss + 0.01, "fscore": fscore}))
        run = Run("sandbox", f"p-{index:010d}", "p", "1", "/r", now(), "COMPLETED")
        run.point = {"TRAINER.learning_rate": 0.1 * (index + 1)}
        rows.append(compare.row(run, results))
    best = compare.sort_rows(rows, "best_validation_loss")
    assert [row["run_id"] for row in best] == ["p-0000000001", "p-0000000000"]
    assert best[0]["test_loss"] == pytest.approx(0.31) and best[0]["best_validation_fscore"] == 0.6
    assert compare.sort_rows(rows, "best_validation_fscore")[0]["run_id"] == "p-0000000001"
    with pytest.raises(CesresError, match="--sort speed: choose one of"):
        compare.sort_rows(rows, "speed")
    data = compare.sweep_plot_data(rows)
    assert data["curves"] == {
        "learning_rate=0.1": [[0, pytest.approx(0.6)], [1, 0.5]],
        "learning_rate=0.2": [[0, pytest.approx(0.4)], [1, 0.3]],
    }
    assert data["panels"] == {"TRAINER.learning_rate": [[0.1, 0.2], [0.2, 0.6]]}


@pytest.mark.parametrize("value", [2**63, -(2**64), float("nan"), float("inf")])
def test_a_point_value_follows_the_rule_of_the_configs_numbers(value):
    """Issue 18: the config's own numbers are bounded and finite; a sweep's values as well."""
    data = {"CONFIG": {"random_seed": 1, "rate": 0.5}}
    key = "CONFIG.random_seed" if isinstance(value, int) else "CONFIG.rate"
    with pytest.raises(CesresError, match=r"beyond 64 bits|give a finite number"):
        configs.set_value(data, key, value, Path("c.yaml"))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ("[2024-01-01]", r"TRAINER.note\[0\] \(line 1\) is a date or time \(JSON cannot hold it\): quote it"),
        ("[!!binary aGk=]", r"TRAINER.note\[0\] \(line 1\) is binary data \(!!binary\): give text"),
        ("[.nan]", r"TRAINER.note\[0\] \(line 1\) is nan: give a finite number"),
    ],
)
def test_a_value_the_registry_cannot_keep_is_refused_before_anything_is_sent(tmp_path, values, message):
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"TRAINER.note: {values}\n")
    with pytest.raises(CesresError, match=message):
        sweep.grid(sweep.parse_vary_file(grid), max_points=64)


def test_points_that_are_the_same_run_are_refused(monkeypatch):
    with pytest.raises(CesresError, match=r"^points 0 \(CONFIG.batch_size=8\) and 2 \(CONFIG.batch_size=8\) are"):
        _prepare(monkeypatch, ["CONFIG.batch_size=8,16,8"])
    # 1e-3 and 0.001 are one value once typed.
    with pytest.raises(CesresError, match="are the same run: give each value once"):
        _prepare(monkeypatch, ["TRAINER.learning_rate=1e-3,0.001"])

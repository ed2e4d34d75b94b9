"""The pure parts of the module cesres_run (plugins/modules/cesres_run.py: it checks, stages and submits a run
on the cluster): which job a run keeps, the store's admission of sent and cluster-side files, the tree
version of a checkout without git. The whole module runs against the sandbox in tests/integration."""

import hashlib

import pytest

from cesres_ctl import rules
from tests.conftest import PROJECT, collection_module


@pytest.fixture(scope="module")
def cesres_run():
    # Imported as Ansible imports it, with the collection's module_utils (the rules: cesres_ctl/rules.py is a
    # link to them).
    assert (PROJECT / "cesres_ctl" / "rules.py").resolve() == PROJECT / "plugins" / "module_utils" / "rules.py"
    return collection_module("plugins.modules.cesres_run")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_sent_file_enters_the_store_only_under_its_own_checksum(cesres_run, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    good = b"print('hello')\n"
    (store / f"{_sha(good)}.incoming").write_bytes(good)
    cesres_run.admit_incoming(store, _sha(good))
    assert (store / _sha(good)).read_bytes() == good
    assert (store / _sha(good)).stat().st_mode & 0o777 == 0o440
    assert not (store / f"{_sha(good)}.incoming").exists()

    # Changed while it was sent: refused, and not kept under a name that lies.
    (store / f"{_sha(b'a')}.incoming").write_bytes(b"b")
    with pytest.raises(cesres_run.RunError, match="another checksum"):
        cesres_run.admit_incoming(store, _sha(b"a"))
    assert sorted(p.name for p in store.iterdir()) == [_sha(good)]


def test_every_input_is_linked_by_its_checksum_cluster_side_ones_too(cesres_run):
    # A cluster-side input (a cluster: data path, a prediction's weights) has no checksum in the module's
    # parameters: check() computes it. Staging once read it from the parameters (KeyError 'sha256').
    inputs = [
        {"name": "training.txt", "sha256": "a" * 64},
        {"name": "weights.th", "cluster_path": "/home/u/cesres/runs/r-0123456789/results/best.th"},
    ]
    cluster_inputs = [{**inputs[1], "sha256": "b" * 64}]
    assert cesres_run.input_checksums(inputs, cluster_inputs) == [("training.txt", "a" * 64), ("weights.th", "b" * 64)]


def test_a_cluster_file_is_copied_into_the_store_not_linked(cesres_run, tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    source = tmp_path / "train.txt"
    source.write_bytes(b"x = 1\n")
    cesres_run.store_cluster_file(source, _sha(b"x = 1\n"), store)
    stored = store / _sha(b"x = 1\n")
    assert stored.read_bytes() == b"x = 1\n"
    # The user may edit their own file later: the store keeps what the run was made from.
    assert stored.stat().st_ino != source.stat().st_ino
    with pytest.raises(cesres_run.RunError, match="changed while it was copied"):
        cesres_run.store_cluster_file(source, _sha(b"other"), store)
    assert sorted(p.name for p in store.iterdir()) == [_sha(b"x = 1\n")]


def test_the_tree_version_of_a_pushed_checkout_ignores_runs_and_follows_the_code(cesres_run, tmp_path):
    root = tmp_path / "code"
    (root / rules.RUNS_DIR / ".store").mkdir(parents=True)
    (root / "model.py").write_text("a\n")
    first = cesres_run.code_version(root, "", "")
    assert first.startswith("tree.") and len(first) == 45
    (root / rules.RUNS_DIR / "demo-0123456789").mkdir()
    (root / rules.RUNS_DIR / ".store" / "x").write_text("data")
    assert cesres_run.code_version(root, "", "") == first
    (root / "model.py").write_text("b, longer\n")
    assert cesres_run.code_version(root, "", "") != first


def test_a_model_counts_as_cached_only_at_the_revision_the_program_loads_by_this_venv(cesres_run):
    listed = [
        "Enoch/graphcodebert-py 0123abc venv1",
        "microsoft/graphcodebert-base main venv1",
        "other/model main venv2",  # another venv's transformers: another cache layout
        "torn-line",
    ]
    models = ["Enoch/graphcodebert-py", "microsoft/graphcodebert-base", "other/model", "absent/model"]
    errors = cesres_run.model_errors(listed, models, "/h", "sandbox", "venv1")
    assert len(errors) == 3
    assert errors[0].startswith(
        "model Enoch/graphcodebert-py is cached at 0123abc only; the program loads main: "
        "cache it with cesres-ctl setup --cluster sandbox"
    )
    assert errors[1].startswith("model other/model is cached in /h for another virtualenv only (another transformers)")
    assert errors[2].startswith("model absent/model, named by the config, is not in the cluster's model cache (/h): ")
    again = [*listed, "Enoch/graphcodebert-py main venv1", "other/model main venv1"]
    assert cesres_run.model_errors(again, models[:3], "/h", "c", "venv1") == []
    # Records of the old form (no venv) prove nothing.
    assert len(cesres_run.model_errors(["absent/model main"], ["absent/model"], "/h", "c", "venv1")) == 1

"""train refuses, before anything is sent, the config keys and values that the real CESReS program fails
on once the job runs (its constructors' TypeErrors, the mult_dense head, allennlp's trainer checks), and
notes the keys it silently ignores. The program's part of the key sets is derived again from its source."""

import ast
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from cesres_ctl.errors import CesresError
from cesres_ctl.runs import config as configs
from tests.conftest import MINI, PROJECT

TEMPLATE = PROJECT / "tests" / "data" / "template_config.yaml"
MINI_SCRIPT = MINI / "cesres_graphcodebert_model.py"
# The real program (the user's fork, as a git bundle), vendored in the checkout.
BUNDLE = PROJECT / "sandbox" / "cesres-fork" / "INGInious-CESReS.bundle"
MODEL_FILE = "cesres_graphcodebert_model.py"


def template_with(tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """The real template_config.yaml changed by `edit`, its data files beside it."""
    data = yaml.safe_load(TEMPLATE.read_text())
    edit(data)
    (tmp_path / "dataset").mkdir(exist_ok=True)
    for name in ("train", "validation", "test"):
        (tmp_path / "dataset" / f"{name}.txt").write_text("x = 1\n $x$ correct\n$$$\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    return cfg


def load(cfg: Path) -> configs.RunConfig:
    return configs.load(cfg, cwd=cfg.parent, gpus=1)


def refused(tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> str:
    with pytest.raises(CesresError) as info:
        load(template_with(tmp_path, edit))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_the_real_template_passes_unchanged_without_notes(tmp_path):
    template_with(tmp_path, lambda data: None)  # its data files
    cfg = tmp_path / "template_config.yaml"
    cfg.write_text(TEMPLATE.read_text())  # the file itself, byte for byte
    assert load(cfg).notes == ()


def test_the_demo_config_takes_only_keys_the_real_program_takes():
    assert configs.load(MINI / "configs" / "demo.yaml", cwd=MINI, gpus=1).notes == ()


def _set(dotted: str, value: object) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        *parents, last = dotted.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value

    return edit


def _drop(dotted: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        *parents, last = dotted.split(".")
        node = data
        for part in parents:
            node = node[part]
        del node[last]

    return edit


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        # CodeReader(**READER), ClassificationEmbedderModel(voc, **MODEL), build_trainer(…, **TRAINER)
        (_set("MODEL.embeding_size", 768), "MODEL.embeding_size is not a key the program takes (did you mean "),
        (_set("READER.hash_size", 4096), "READER.hash_size is not a key the program takes"),
        (_set("TRAINER.learning_rat", 1e-5), "TRAINER.learning_rat is not a key the program takes (did you mean "),
        (_set("TRAINER.num_epochs", 3), "TRAINER.num_epochs is given twice"),
        (_set("MODEL.voc", "x"), "MODEL.voc is given twice"),
        # HuggingfaceAdamWOptimizer(parameters, lr=learning_rate, **kwargs_optimizer)
        (_set("TRAINER.kwargs_optimizer", {"weight_decay": 0.1, "lr": 1e-3}), "TRAINER.kwargs_optimizer.lr is given"),
        (_set("TRAINER.kwargs_optimizer", {"beta": [0.9, 0.99]}), "(did you mean betas?)"),
        # create_parameter(kind, name, arg=[], kwargs={}) and its tables
        (_set("MODEL.encoder.args", ["Enoch/graphcodebert-py"]), "MODEL.encoder.args is not a key"),
        (_set("MODEL.encoder", {"arg": ["Enoch/graphcodebert-py"]}), "MODEL.encoder lacks name"),
        (_set("MODEL.encoder.name", "pooler"), "MODEL.encoder.name is 'pooler'"),
        (_set("MODEL.loss.name", "bce"), "MODEL.loss.name is 'bce'"),
        (_set("MODEL.classification_head.kwargs.activation", {"name": "tanh"}), "activation.name is 'tanh'"),
        (_set("MODEL.classification_head.kwargs.normalize", True), "kwargs.normalize is not a key the program"),
        (_set("MODEL.classification_head.kwargs.num_labels", 18), "kwargs.num_labels is given twice"),
        (_set("MODEL.classification_head.kwargs", None), "MODEL.classification_head.kwargs must be a mapping"),
        # BertPooler(*arg, **kwargs): its model id is required, and the only value by position
        (_drop("MODEL.encoder.arg"), "MODEL.encoder.arg lacks pretrained_model"),
        (_set("MODEL.encoder.arg", ["Enoch/graphcodebert-py", 0.1]), "MODEL.encoder.arg has 2 values"),
        (_set("MODEL.encoder.kwargs", {"drop_out": 0.1}), "(did you mean dropout?)"),
        # torch.nn.Linear(*arg, **kwargs)
        (_set("MODEL.classification_head", {"name": "simple", "arg": [768]}), "arg lacks out_features"),
    ],
)
def test_keys_the_real_constructors_do_not_take_are_refused(tmp_path, edit, needle):
    assert needle in refused(tmp_path, edit)


def test_the_message_names_the_file_the_key_and_the_nearest_key(tmp_path):
    message = refused(tmp_path, _set("MODEL.embeding_size", 768))
    assert message.endswith(
        "config.yaml: MODEL.embeding_size is not a key the program takes (did you mean embedding_size?)"
    )


@pytest.mark.parametrize(
    "arg",
    [
        [2, [768, 64], 18],  # len + 1 != number: its assert fails
        [3, [768, 64], 18],  # len + 1 == number: its loop then reads hidden_sizes[number]: IndexError
        [1, [], 18],
    ],
)
def test_list_hidden_sizes_of_mult_dense_are_refused(tmp_path, arg):
    message = refused(tmp_path, _set("MODEL.classification_head.arg", arg))
    assert "MODEL.classification_head.arg[1] is a list" in message


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (_set("TRAINER.patience", 0), "TRAINER.patience must be a whole number >= 1"),
        (_set("TRAINER.patience", 2.5), "TRAINER.patience must be a whole number >= 1"),
        (_set("TRAINER.validation_metric", "loss"), "TRAINER.validation_metric 'loss' must be"),
        (_set("TRAINER.validation_metric", "+f1"), "TRAINER.validation_metric '+f1' must be"),
        (_set("TRAINER.validation_metric", None), "TRAINER.validation_metric None must be"),
        (_set("TRAINER.validation_metric", "+accuracy"), "'+accuracy' must be"),
    ],
)
def test_trainer_values_allennlp_refuses_are_refused(tmp_path, edit, needle):
    assert needle in refused(tmp_path, edit)


def test_trainer_values_allennlp_takes_pass(tmp_path):
    def edit(data: dict[str, Any]) -> None:
        data["TRAINER"].update({"patience": 3, "validation_metric": ["+fscore", "-loss", "+accuracy"]})
        data["MODEL"]["accuracy"] = {"name": "categorical_accuracy"}

    assert load(template_with(tmp_path, edit)).notes == ()


def test_keys_the_program_ignores_are_noted_not_refused(tmp_path):
    def edit(data: dict[str, Any]) -> None:
        data["CONFIG"]["batchsize"] = 16
        data["VOCABULARY"]["model"] = "x"
        data["EXTRA"] = {"a": 1}

    notes = load(template_with(tmp_path, edit)).notes
    assert any(
        n.endswith("CONFIG.batchsize is not read by the program, which ignores it (did you mean batch_size?)")
        for n in notes
    )
    assert any("VOCABULARY.model is not read by the program" in n for n in notes)
    assert any("section EXTRA is not read by the program" in n for n in notes)
    assert all("\n" not in n for n in notes)


def test_train_prints_the_notes_and_goes_on(tmp_path, monkeypatch, capsys):
    from tests.conftest import run_main

    cfg = template_with(tmp_path, _set("CONFIG.batchsize", 16))
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(monkeypatch, capsys, "train", str(cfg), "-C", "sandbox", "--dry-run")
    assert code == 0, err
    assert "note: " in err and "CONFIG.batchsize is not read by the program" in err
    assert out.startswith("# dry run")


# ---- the key sets, derived again from the real program's source -------------------------------------


@pytest.fixture(scope="module")
def real_source(tmp_path_factory: pytest.TempPathFactory) -> ast.Module:
    git = tmp_path_factory.mktemp("real") / "git"
    subprocess.run(["git", "init", "-q", "--bare", str(git)], check=True)
    subprocess.run(["git", "-C", str(git), "fetch", "-q", str(BUNDLE), "master"], check=True)
    text = subprocess.run(
        ["git", "-C", str(git), "show", f"FETCH_HEAD:{MODEL_FILE}"], check=True, capture_output=True, text=True
    ).stdout
    return ast.parse(text)


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef]:
    """Top-level functions, and classes as their __init__ (without self)."""
    found: dict[str, ast.FunctionDef] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found[node.name] = node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    found[node.name] = item
    return found


def _params(function: ast.FunctionDef) -> tuple[tuple[str, ...], int]:
    names = [a.arg for a in function.args.args if a.arg != "self"]
    return tuple(names), len(names) - len(function.args.defaults)


def _callee(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _section(node: ast.expr) -> str | None:
    """SECTION for the expression config["SECTION"]."""
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and node.value.id == "config"
        and isinstance(node.slice, ast.Constant)
    ):
        return str(node.slice.value)
    return None


def _splats(tree: ast.AST) -> list[tuple[ast.Call, ast.expr]]:
    """Every call that passes a mapping as keyword arguments (**x), with x."""
    return [
        (node, kw.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for kw in node.keywords
        if kw.arg is None
    ]


def _shape(call: ast.Call) -> tuple[int, tuple[str, ...]]:
    """What the program itself passes: how many values by position, which keywords."""
    return len(call.args), tuple(kw.arg for kw in call.keywords if kw.arg is not None)


def derive_section_calls(tree: ast.Module) -> dict[str, set[tuple[str, int, tuple[str, ...]]]]:
    """SECTION -> {(callee, values it gets by position, keywords it gets)}: the calls that receive a
    section's keys as keyword arguments, directly (f(..., **config["S"])) or through one function
    that passes its parameter on (build_model(voc, config["MODEL"]) -> Model(voc, **kwargs_model))."""
    functions = _functions(tree)
    calls: dict[str, set[tuple[str, int, tuple[str, ...]]]] = {}
    for call, value in _splats(tree):
        section = _section(value)
        if section is not None:
            calls.setdefault(section, set()).add((_callee(call), *_shape(call)))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or _callee(node) not in functions:
            continue
        function = functions[_callee(node)]
        names = [a.arg for a in function.args.args]
        for index, arg in enumerate(node.args):
            section = _section(arg)
            if section is None:
                continue
            for inner, value in _splats(function):
                if isinstance(value, ast.Name) and value.id == names[index]:
                    calls.setdefault(section, set()).add((_callee(inner), *_shape(inner)))
    return calls


def derive_tables(tree: ast.Module) -> dict[str, dict[str, str | None]]:
    """create_parameter's tables (param_types): kind -> name -> the callee its lambda passes *arg,
    **kwargs to, or None when it ignores them."""
    assigned = {
        target.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    kinds = assigned["param_types"]
    assert isinstance(kinds, ast.Dict)
    tables: dict[str, dict[str, str | None]] = {}
    for kind, table_name in zip(kinds.keys, kinds.values, strict=True):
        assert isinstance(kind, ast.Constant) and isinstance(table_name, ast.Name)
        table = assigned[table_name.id]
        assert isinstance(table, ast.Dict)
        entries: dict[str, str | None] = {}
        for name, function in zip(table.keys, table.values, strict=True):
            assert isinstance(name, ast.Constant) and isinstance(function, ast.Lambda)
            body = function.body
            splats = isinstance(body, ast.Call) and any(isinstance(a, ast.Starred) for a in body.args)
            entries[str(name.value)] = _callee(body) if isinstance(body, ast.Call) and splats else None
        tables[str(kind.value)] = entries
    return tables


def derive_read_keys(tree: ast.Module) -> dict[str, set[str]]:
    """The keys the program reads from each section (config["S"]["k"], config["S"].get("k")), and for
    CONFIG its command line's options too (copied into CONFIG when the file lacks them)."""
    read: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and _section(node.value) and isinstance(node.slice, ast.Constant):
            read.setdefault(str(_section(node.value)), set()).add(str(node.slice.value))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            section = _section(node.func.value)
            if section and node.args and isinstance(node.args[0], ast.Constant):
                read.setdefault(section, set()).add(str(node.args[0].value))
        if isinstance(node, ast.Call) and _callee(node) == "add_argument":
            longs = [a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("--")]
            read.setdefault("CONFIG", set()).add(str(longs[0])[2:])
    return read


def test_the_key_sets_are_the_real_programs(real_source):
    from cesres_ctl.runs import real_program as real

    functions = _functions(real_source)
    for signature in (real.CODE_READER, real.MODEL, real.BUILD_TRAINER, real.CREATE_PARAMETER, real.SEQUENTIAL_HEAD):
        function_name = signature.name.removesuffix(".__init__")
        assert _params(functions[function_name]) == (signature.params, signature.required), signature.name

    sections = derive_section_calls(real_source)
    expected_sections = {
        section: {(call.signature.name.removesuffix(".__init__"), call.given, call.fixed)}
        for section, call in real.SECTION_CALLS.items()
    }
    assert {s: sections[s] for s in ("READER", "MODEL", "TRAINER")} == expected_sections

    # Inside build_trainer: HuggingfaceAdamWOptimizer(parameters, lr=learning_rate, **kwargs_optimizer)
    optimizer = [
        (_callee(call), *_shape(call))
        for call, value in _splats(functions["build_trainer"])
        if isinstance(value, ast.Name) and value.id == "kwargs_optimizer"
    ]
    call = real.OPTIMIZER_CALL
    assert optimizer == [(call.signature.name.removesuffix(".__init__"), call.given, call.fixed)]

    # create_parameter(kind, **spec): one value by position, everywhere
    shapes = {_shape(c) for c, _ in _splats(real_source) if _callee(c) == "create_parameter"}
    assert shapes == {(real.PARAMETER_GIVEN, ())}
    tables = {
        kind: {name: (callee.name.removesuffix(".__init__") if callee else None) for name, callee in table.items()}
        for kind, table in real.CHOICES.items()
    }
    assert derive_tables(real_source) == tables

    read = derive_read_keys(real_source)
    for section in ("VOCABULARY", "INTERPRETER", "CONFIG"):
        assert read[section] == real.READ_KEYS[section], section


def test_cesres_mini_takes_the_same_keys_as_cesres_ctl_checks():
    """cesres-mini keeps its own copy (it runs on the cluster, without cesres_ctl): the same calls."""
    from cesres_ctl.runs import real_program as real

    tree = ast.parse(MINI_SCRIPT.read_text())
    table = next(
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "REAL_CALLS" for t in node.targets)
    )
    mini = ast.literal_eval(table)
    ours = {
        s.name: [list(s.params), s.required, s.positional]
        for s in (
            real.CODE_READER,
            real.MODEL,
            real.BUILD_TRAINER,
            real.CREATE_PARAMETER,
            real.SEQUENTIAL_HEAD,
            real.LINEAR,
            real.BERT_POOLER,
            real.ADAMW,
        )
    }
    assert mini == ours

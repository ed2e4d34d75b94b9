"""Load Hugging Face models the way the job's own libraries read them; record the proven ones.

Run ON THE CLUSTER (login node) with the venv's Python, the modules loaded and HF_HOME set: a module_utils
of the collection cesres.ctl that the module cesres_hf_cache (module_utils/provision.py) runs as a file,
first online (the loaders download into the cache), then again with TRANSFORMERS_OFFLINE=1
HF_HUB_OFFLINE=1 as a compute node without internet would, then `record`.
    python3 cache_models.py load ID REVISION [ID REVISION ...]
    python3 cache_models.py record HF_HOME STAMP ID REVISION [ID REVISION ...]
`load` calls the loaders the real program calls (AutoConfig, AutoTokenizer, and AutoModel when
torch is importable), so the cache gets whatever layout this transformers version reads (4.20
its own files, 4.22+ the hub's snapshots). `record` adds "ID REVISION STAMP" lines to
HF_HOME/cesres-models.list (STAMP: the venv's ready stamp, which names its transformers: each version reads
its own cache layout), which cesres-ctl train reads. A failure is one line on stderr naming
the model (exit 3); transformers missing: exit 2.
"""

import sys
from pathlib import Path

LIST = "cesres-models.list"


def load(model_id: str, revision: str) -> None:
    from transformers import AutoConfig, AutoTokenizer

    AutoConfig.from_pretrained(model_id, revision=revision)
    AutoTokenizer.from_pretrained(model_id, revision=revision)
    try:
        import torch  # noqa: F401  (the weights need torch, which the PyTorch module gives)
    except ImportError:
        return
    from transformers import AutoModel

    AutoModel.from_pretrained(model_id, revision=revision)


def pairs_of(values: list[str]) -> list[tuple[str, str]]:
    return [(values[i], values[i + 1]) for i in range(0, len(values) - 1, 2)]


def record(home: str, stamp: str, pairs: list[tuple[str, str]]) -> None:
    path = Path(home) / LIST
    lines = set(path.read_text(encoding="utf-8").splitlines()) if path.exists() else set()
    lines.update(f"{model} {revision} {stamp}" for model, revision in pairs)
    partial = path.with_suffix(".tmp")
    partial.write_text("".join(f"{line}\n" for line in sorted(lines) if line.strip()), encoding="utf-8")
    partial.replace(path)


def main(argv: list[str]) -> int:
    if argv[:1] == ["record"]:
        record(argv[1], argv[2], pairs_of(argv[3:]))
        return 0
    try:
        import transformers  # noqa: F401
    except ImportError as error:
        print(f"transformers is not importable in the virtualenv ({error}): install it", file=sys.stderr)
        return 2
    for model_id, revision in pairs_of(argv[1:]):
        try:
            load(model_id, revision)
        except Exception as error:  # whatever the loaders raise, name the model in one line
            lines = str(error).strip().splitlines()
            detail = f"{type(error).__name__}: {lines[-1] if lines else ''}"
            print(f"{model_id} (revision {revision}): {detail}", file=sys.stderr)
            return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

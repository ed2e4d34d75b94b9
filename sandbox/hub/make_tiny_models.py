#!/usr/bin/env python3
"""Write tiny stand-ins for the Hugging Face model repositories that CESReS downloads.

The sandbox cluster has no access to the real Hugging Face hub, so its login node downloads from
``hub_server.py`` instead, which serves the directory this script writes. Each repository is a valid
RoBERTa model: ``transformers.AutoConfig``, ``AutoTokenizer`` (slow and fast) and, with ``--weights``,
``AutoModel`` load it. Its sizes are those the real configs need (768 wide, so that the real
``template_config.yaml``'s head ``[1, 768, 18]`` and ``embedding_size: 768`` fit; 514 positions, as
CESReS pads to 512 tokens) with one layer and a small vocabulary, so that it stays small (~33 MB of
random weights, ``pytorch_model.bin`` as transformers 4.20 saves it). ``--weights`` needs torch: the
sandbox runs this with the PyTorch module's torch.

The output is deterministic: the same arguments write the same bytes, so the hub server's ETags and
commit ids stay the same from one run (and one machine) to the next.

    make_tiny_models.py --out DIR [--id ORG/NAME ...] [--weights] [--quiet]
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
from pathlib import Path

DEFAULT_IDS: tuple[str, ...] = ("Enoch/graphcodebert-py", "microsoft/graphcodebert-base")

# Same rule as the hub: two path segments, letters, digits, '-', '_', '.', not starting with '.' or '-'.
REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")

SPECIAL_TOKENS: tuple[str, ...] = ("<s>", "<pad>", "</s>", "<unk>")
MASK_TOKEN = "<mask>"  # noqa: S105 (a tokenizer token, not a password)

# Words that get whole-word merges, with and without the leading space the byte-level
# pre-tokenizer attaches to a word ("Ġ" stands for the space byte).
PYTHON_WORDS: tuple[str, ...] = (
    "def",
    "return",
    "print",
    "self",
    "range",
    "if",
    "else",
    "elif",
    "for",
    "while",
    "in",
    "is",
    "not",
    "and",
    "or",
    "import",
    "from",
    "class",
    "None",
    "True",
    "False",
    "len",
)
# Runs of spaces (indentation) and a newline followed by indentation.
WHITESPACE_RUNS: tuple[str, ...] = ("ĠĠ", "ĠĠĠ", "ĠĠĠĠ", "ĠĠĠĠĠĠĠ", "ĠĠĠĠĠĠĠĠ")

MAX_LENGTH = 512  # RoBERTa: max_position_embeddings = model_max_length + padding_idx + 1
HIDDEN = 768
LAYERS = 1
HEADS = 12
INTERMEDIATE = 3072
WEIGHTS = "pytorch_model.bin"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / RoBERTa byte-level alphabet: every byte maps to a printable unicode character."""
    printable = list(range(ord("!"), ord("~") + 1))
    printable += list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {byte: chr(char) for byte, char in zip(printable, chars, strict=True)}


def bpe(symbols: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Apply ranked merges to ``symbols`` as byte-level BPE does: lowest-ranked adjacent pair first."""
    parts = list(symbols)
    while len(parts) > 1:
        pairs = [(ranks.get(pair), index) for index, pair in enumerate(itertools.pairwise(parts))]
        ranked = [(rank, index) for rank, index in pairs if rank is not None]
        if not ranked:
            break
        _, index = min(ranked)
        parts[index : index + 2] = [parts[index] + parts[index + 1]]
    return parts


def build_bpe() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The vocabulary (token -> id) and the ranked merges of the tiny byte-level BPE.

    Each word is first split by the merges so far, then the pieces are joined left to right by new
    merges. A new merge ranks after every older one, so a word that was one token stays one token.
    """
    byte_encoder = bytes_to_unicode()
    alphabet = [byte_encoder[byte] for byte in range(256)]
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}

    def learn(symbols: list[str]) -> None:
        parts = bpe(symbols, ranks)
        current = parts[0]
        for part in parts[1:]:
            ranks[(current, part)] = len(merges)
            merges.append((current, part))
            current += part

    space = byte_encoder[ord(" ")]
    for word in PYTHON_WORDS:
        symbols = [byte_encoder[byte] for byte in word.encode("utf-8")]
        learn(symbols)
        learn([space, *symbols])
    for run in WHITESPACE_RUNS:
        learn(list(run))

    vocab: dict[str, int] = {}
    for token in [*SPECIAL_TOKENS, *alphabet, *(left + right for left, right in merges), MASK_TOKEN]:
        if token not in vocab:
            vocab[token] = len(vocab)
    return vocab, merges


def dump_json(data: object) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def model_config(vocab_size: int) -> dict[str, object]:
    return {
        "architectures": ["RobertaModel"],
        "attention_probs_dropout_prob": 0.1,
        "bos_token_id": 0,
        "classifier_dropout": None,
        "eos_token_id": 2,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": INTERMEDIATE,
        "layer_norm_eps": 1e-05,
        "max_position_embeddings": MAX_LENGTH + 2,
        "model_type": "roberta",
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "pad_token_id": 1,
        "position_embedding_type": "absolute",
        "transformers_version": "4.30.2",
        "type_vocab_size": 1,
        "use_cache": True,
        "vocab_size": vocab_size,
    }


def tokenizer_config() -> dict[str, object]:
    return {
        "add_prefix_space": False,
        "bos_token": "<s>",
        "clean_up_tokenization_spaces": True,
        "cls_token": "<s>",
        "eos_token": "</s>",
        "errors": "replace",
        "mask_token": MASK_TOKEN,
        "model_max_length": MAX_LENGTH,
        "pad_token": "<pad>",
        "sep_token": "</s>",
        "tokenizer_class": "RobertaTokenizer",
        "trim_offsets": True,
        "unk_token": "<unk>",
    }


def special_tokens_map() -> dict[str, object]:
    return {
        "bos_token": "<s>",
        "cls_token": "<s>",
        "eos_token": "</s>",
        "mask_token": {
            "content": MASK_TOKEN,
            "lstrip": True,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
        },
        "pad_token": "<pad>",
        "sep_token": "</s>",
        "unk_token": "<unk>",
    }


def readme(repo_id: str, vocab_size: int, merge_count: int) -> str:
    return f"""---
library_name: transformers
tags:
- roberta
- sandbox
---

# {repo_id} (tiny sandbox stand-in)

This is **not** the real `{repo_id}` model. It is a tiny stand-in written by
`sandbox/hub/make_tiny_models.py` of cesres-ctl and served by `sandbox/hub/hub_server.py`, an
imitation of the Hugging Face hub's download API, to the login node of the local sandbox cluster.

- `config.json`: a RoBERTa configuration with the real width (hidden size {HIDDEN}, {HEADS} heads,
  {MAX_LENGTH} tokens) but {LAYERS} layer, and `vocab_size` {vocab_size}.
- `vocab.json`, `merges.txt`: a byte-level BPE vocabulary of {vocab_size} tokens (the special tokens
  `<s> <pad> </s> <unk> <mask>`, the 256 byte-level symbols and {merge_count} merges for common
  Python words and indentation).
- `tokenizer_config.json`, `special_tokens_map.json`: for `RobertaTokenizer` and
  `RobertaTokenizerFast` (`AutoTokenizer`, with or without `use_fast=False`).

- `pytorch_model.bin` (written with `--weights`): random weights of a `RobertaModel` of these sizes
  (seeded), as `save_pretrained` of transformers 4.20 writes them: `AutoModel.from_pretrained` loads it.

The files are deterministic: every run of the generator writes the same bytes.
"""


def repo_files(repo_id: str) -> dict[str, str]:
    """File name -> text content of the tiny repository ``repo_id``."""
    vocab, merges = build_bpe()
    merges_text = "#version: 0.2\n" + "".join(f"{left} {right}\n" for left, right in merges)
    return {
        "README.md": readme(repo_id, len(vocab), len(merges)),
        "config.json": dump_json(model_config(len(vocab))),
        "merges.txt": merges_text,
        "special_tokens_map.json": dump_json(special_tokens_map()),
        "tokenizer_config.json": dump_json(tokenizer_config()),
        "vocab.json": dump_json(vocab),
    }


def state_dict(vocab_size: int) -> dict[str, object]:
    """Seeded random weights of a RobertaModel of model_config's sizes, under transformers' key names."""
    import torch  # the PyTorch module's: only --weights needs it

    generator = torch.Generator().manual_seed(0)

    def normal(*shape: int) -> object:
        return torch.randn(*shape, generator=generator) * 0.02

    weights: dict[str, object] = {
        "embeddings.position_ids": torch.arange(MAX_LENGTH + 2).expand((1, -1)).clone(),
        "embeddings.word_embeddings.weight": normal(vocab_size, HIDDEN),
        "embeddings.position_embeddings.weight": normal(MAX_LENGTH + 2, HIDDEN),
        "embeddings.token_type_embeddings.weight": normal(1, HIDDEN),
        "embeddings.LayerNorm.weight": torch.ones(HIDDEN),
        "embeddings.LayerNorm.bias": torch.zeros(HIDDEN),
    }
    dense = {
        "attention.self.query": (HIDDEN, HIDDEN),
        "attention.self.key": (HIDDEN, HIDDEN),
        "attention.self.value": (HIDDEN, HIDDEN),
        "attention.output.dense": (HIDDEN, HIDDEN),
        "intermediate.dense": (INTERMEDIATE, HIDDEN),
        "output.dense": (HIDDEN, INTERMEDIATE),
    }
    for layer in range(LAYERS):
        prefix = f"encoder.layer.{layer}."
        for name, (rows, columns) in dense.items():
            weights[f"{prefix}{name}.weight"] = normal(rows, columns)
            weights[f"{prefix}{name}.bias"] = torch.zeros(rows)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            weights[f"{prefix}{norm}.weight"] = torch.ones(HIDDEN)
            weights[f"{prefix}{norm}.bias"] = torch.zeros(HIDDEN)
    weights["pooler.dense.weight"] = normal(HIDDEN, HIDDEN)
    weights["pooler.dense.bias"] = torch.zeros(HIDDEN)
    return weights


def write_weights(target: Path) -> None:
    """pytorch_model.bin of the repository in `target`, written in place only when its bytes change."""
    import io

    import torch

    vocab = json.loads((target / "vocab.json").read_text(encoding="utf-8"))
    buffer = io.BytesIO()
    torch.save(state_dict(len(vocab)), buffer)
    data = buffer.getvalue()
    path = target / WEIGHTS
    if not path.exists() or path.read_bytes() != data:
        partial = path.with_suffix(".partial")
        partial.write_bytes(data)
        partial.replace(path)


def write_repo(out: Path, repo_id: str) -> Path:
    if not REPO_ID_RE.match(repo_id) or ".." in repo_id:
        raise ValueError(f"not a repository id of the form ORG/NAME: {repo_id!r}")
    target = out / repo_id
    target.mkdir(parents=True, exist_ok=True)
    for name, text in repo_files(repo_id).items():
        # newline="" keeps "\n" on every platform: the bytes (and so the ETags) never vary.
        with (target / name).open("w", encoding="utf-8", newline="") as handle:
            handle.write(text)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write tiny, deterministic RoBERTa model repositories (config, tokenizer and, with --weights, "
        "random weights) for the sandbox's imitation of the Hugging Face hub.",
    )
    parser.add_argument("--out", required=True, type=Path, help="output directory; one sub-directory per ORG/NAME")
    parser.add_argument(
        "--id",
        dest="ids",
        action="append",
        default=[],
        metavar="ORG/NAME",
        help=f"also write this repository id (repeatable); always written: {', '.join(DEFAULT_IDS)}",
    )
    parser.add_argument("--weights", action="store_true", help=f"also write {WEIGHTS} (needs torch)")
    parser.add_argument("--quiet", action="store_true", help="do not print the written directories")
    args = parser.parse_args(argv)

    ids = list(dict.fromkeys([*DEFAULT_IDS, *args.ids]))
    bad = [repo_id for repo_id in ids if not REPO_ID_RE.match(repo_id) or ".." in repo_id]
    if bad:
        parser.error(f"not a repository id of the form ORG/NAME: {', '.join(bad)}")
    for repo_id in ids:
        target = write_repo(args.out, repo_id)
        if args.weights:
            write_weights(target)
        if not args.quiet:
            print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())

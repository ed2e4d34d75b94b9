#!/usr/bin/env python3
"""Deterministic generator of the cesres-mini data set (data/train.txt, validation.txt, test.txt).

The real CESReS data set was built by *mutation labelling*: correct student-like solutions are
mutated by operators that each inject one known misconception, and the mutated snippet is labelled
with the names of the operators that were applied.  This script does the same on a small scale:

1. an exercise template writes a correct solution, with random names, statement variants and an
   optional demo call (``print(f(...))``) so that surface tokens alone are not a give-away;
2. zero, one or two mutation operators (regular-expression rewrites of that source) are applied;
3. the snippet is labelled with the applied operators, or ``correct`` if none was applied.

Usage: ``python3 tools/make_dataset.py [--seed 2024] [--out data]`` (stdlib only).
The output is byte-identical for a given seed and Python version >= 3.11.
"""

from __future__ import annotations

import argparse
import random
import re
from collections.abc import Callable
from pathlib import Path

SNIPPET_SPLITTER = "\n$$$\n"
LABEL_SPLITTER = " $x$ "
MULTI_LABELS = " ; "

LABELS = (
    "print_instead_of_return",
    "off_by_one_range",
    "missing_base_case",
    "mutable_default_argument",
    "comparison_with_is",
    "unused_return_value",
    "correct",
)

FUNC_NAMES = {
    "sum": ["total", "sum_list", "somme", "add_all", "list_sum", "compute_sum"],
    "count": ["count", "count_occurrences", "nb_occ", "how_many", "compter"],
    "fact": ["fact", "factorial", "factorielle", "fac"],
    "fib": ["fib", "fibonacci", "fibo"],
    "digits": ["sum_digits", "digit_sum", "somme_chiffres"],
    "power": ["power", "puissance", "pow_rec", "expo"],
    "rev": ["reverse", "rev", "inverse", "reverse_string"],
    "evens": ["evens", "keep_even", "get_evens", "filter_even", "pairs"],
    "basket": ["add_item", "add_to_basket", "ajouter", "register"],
    "clean": ["clean", "normalize", "clean_name", "nettoyer"],
    "median": ["median", "mediane", "middle_value"],
    "sorted": ["is_sorted", "est_trie", "check_sorted", "increasing"],
    "max": ["maximum", "biggest", "max_list", "plus_grand"],
    "gauss": ["sum_to", "triangle", "sum_n", "somme_n"],
    "vowels": ["count_vowels", "vowels", "nb_voyelles"],
    "snake": ["snake", "to_snake", "underscore"],
    "index": ["find", "index_of", "search", "position"],
    "squares": ["squares", "map_square", "all_squares", "carres"],
    "gcd": ["gcd", "pgcd", "euclid"],
    "palin": ["is_palindrome", "palindrome", "est_palindrome"],
    "avg": ["average", "mean", "moyenne", "avg"],
}
LIST_NAMES = ["lst", "values", "numbers", "data", "l", "items", "nums", "t"]
ELEM_NAMES = ["x", "v", "elem", "item", "n", "e", "val"]
INDEX_NAMES = ["i", "j", "k", "idx", "pos"]
ACC_NAMES = ["acc", "result", "res", "total", "s", "out"]
INT_NAMES = ["n", "k", "num", "x", "m"]
STR_NAMES = ["s", "word", "text", "name", "chaine", "txt"]


class Ctx:
    """Random name and style choices for one snippet."""

    def __init__(self, rng: random.Random, family: str) -> None:
        self.rng = rng
        self.f = rng.choice(FUNC_NAMES[family])
        self.l = rng.choice(LIST_NAMES)
        self.x = rng.choice([n for n in ELEM_NAMES if n != self.l])
        self.i = rng.choice(INDEX_NAMES)
        self.acc = rng.choice([n for n in ACC_NAMES if n not in (self.l, self.f)])
        self.n = rng.choice(INT_NAMES)
        self.s = rng.choice(STR_NAMES)

    def add(self, target: str, value: str) -> str:
        """``target += value`` or ``target = target + value``."""
        return self.rng.choice([f"{target} += {value}", f"{target} = {target} + {value}"])

    def demo(self, code: str, call: str) -> str:
        """Sometimes add a docstring-ish comment and a demo call, as students do."""
        if self.rng.random() < 0.25:
            code = f"# exercise: {self.f}\n" + code
        if self.rng.random() < 0.4:
            code += f"\n\nprint({call})\n"
        return code


def t_sum(c: Ctx) -> str:
    if c.rng.random() < 0.5:
        body = f"    {c.acc} = 0\n    for {c.i} in range(len({c.l})):\n        {c.add(c.acc, f'{c.l}[{c.i}]')}\n"
    else:
        body = f"    {c.acc} = 0\n    for {c.x} in {c.l}:\n        {c.add(c.acc, c.x)}\n"
    return c.demo(f"def {c.f}({c.l}):\n{body}    return {c.acc}\n", f"{c.f}([1, 2, 3])")


def t_count(c: Ctx) -> str:
    t = c.rng.choice(["target", "value", "elem_to_find", "y"])
    if c.rng.random() < 0.5:
        loop = f"    for {c.x} in {c.l}:\n        if {c.x} == {t}:\n"
    else:
        loop = f"    for {c.i} in range(len({c.l})):\n        if {c.l}[{c.i}] == {t}:\n"
    inc = c.add(c.acc, "1")
    code = f"def {c.f}({c.l}, {t}):\n    {c.acc} = 0\n{loop}            {inc}\n    return {c.acc}\n"
    return c.demo(code, f"{c.f}([1, 2, 1], 1)")


def t_fact(c: Ctx) -> str:
    cond = c.rng.choice([f"{c.n} == 0", f"{c.n} <= 1", f"{c.n} == 1"])
    return c.demo(
        f"def {c.f}({c.n}):\n    if {cond}:\n        return 1\n    return {c.n} * {c.f}({c.n} - 1)\n",
        f"{c.f}(5)",
    )


def t_fib(c: Ctx) -> str:
    if c.rng.random() < 0.5:
        base = f"    if {c.n} < 2:\n        return {c.n}\n"
    else:
        base = f"    if {c.n} == 0 or {c.n} == 1:\n        return {c.n}\n"
    rec = f"    return {c.f}({c.n} - 1) + {c.f}({c.n} - 2)\n"
    return c.demo(f"def {c.f}({c.n}):\n{base}{rec}", f"{c.f}(10)")


def t_digits(c: Ctx) -> str:
    return c.demo(
        f"def {c.f}({c.n}):\n    if {c.n} < 10:\n        return {c.n}\n    return {c.n} % 10 + {c.f}({c.n} // 10)\n",
        f"{c.f}(1234)",
    )


def t_power(c: Ctx) -> str:
    b = c.rng.choice(["base", "a", "b"])
    return c.demo(
        f"def {c.f}({b}, {c.n}):\n    if {c.n} == 0:\n        return 1\n    return {b} * {c.f}({b}, {c.n} - 1)\n",
        f"{c.f}(2, 8)",
    )


def t_rev(c: Ctx) -> str:
    cond = c.rng.choice([f'{c.s} == ""', f"len({c.s}) == 0", f"len({c.s}) <= 1"])
    ret = c.s if "<= 1" in cond else '""'
    return c.demo(
        f"def {c.f}({c.s}):\n    if {cond}:\n        return {ret}\n    return {c.f}({c.s}[1:]) + {c.s}[0]\n",
        f'{c.f}("hello")',
    )


def t_evens(c: Ctx) -> str:
    test = c.rng.choice([f"{c.x} % 2 == 0", f"{c.x} % 2 != 1"])
    return c.demo(
        f"def {c.f}({c.l}, {c.acc}=None):\n    if {c.acc} is None:\n        {c.acc} = []\n"
        f"    for {c.x} in {c.l}:\n        if {test}:\n            {c.acc}.append({c.x})\n"
        f"    return {c.acc}\n",
        f"{c.f}([1, 2, 3, 4])",
    )


def t_basket(c: Ctx) -> str:
    item = c.rng.choice(["item", "product", "thing", "article"])
    coll, empty, store = c.rng.choice(
        [
            ("basket", "[]", "{c}.append({i})"),
            ("seen", "{}", "{c}[{i}] = True"),
            ("bag", "[]", "{c}.append({i})"),
        ]
    )
    store = store.format(c=coll, i=item)
    extra = f'    if {item} == "":\n        return {coll}\n' if c.rng.random() < 0.4 else ""
    return c.demo(
        f"def {c.f}({item}, {coll}=None):\n    if {coll} is None:\n        {coll} = {empty}\n"
        f"{extra}    {store}\n    return {coll}\n",
        f'{c.f}("apple")',
    )


def t_clean(c: Ctx) -> str:
    ops = c.rng.sample(["strip()", "lower()", "title()", 'replace("  ", " ")'], k=c.rng.choice([1, 2, 3]))
    lines = "".join(f"    {c.s} = {c.s}.{op}\n" for op in ops)
    return c.demo(f"def {c.f}({c.s}):\n{lines}    return {c.s}\n", f'{c.f}("  Alice ")')


def t_median(c: Ctx) -> str:
    m = c.rng.choice(["mid", "middle", "m", "half"])
    sort = c.rng.choice([f"    {c.l} = sorted({c.l})\n", f"    {c.l} = list(sorted({c.l}))\n"])
    return c.demo(
        f"def {c.f}({c.l}):\n{sort}    {m} = len({c.l}) // 2\n    return {c.l}[{m}]\n",
        f"{c.f}([3, 1, 2])",
    )


def t_sorted(c: Ctx) -> str:
    return c.demo(
        f"def {c.f}({c.l}):\n    for {c.i} in range(len({c.l}) - 1):\n"
        f"        if {c.l}[{c.i}] > {c.l}[{c.i} + 1]:\n            return False\n    return True\n",
        f"{c.f}([1, 2, 2, 5])",
    )


def t_max(c: Ctx) -> str:
    best = c.rng.choice(["best", "biggest", "m", "current_max"])
    return c.demo(
        f"def {c.f}({c.l}):\n    {best} = {c.l}[0]\n    for {c.i} in range(1, len({c.l})):\n"
        f"        if {c.l}[{c.i}] > {best}:\n            {best} = {c.l}[{c.i}]\n    return {best}\n",
        f"{c.f}([4, 9, 2])",
    )


def t_gauss(c: Ctx) -> str:
    return c.demo(
        f"def {c.f}({c.n}):\n    {c.acc} = 0\n    for {c.i} in range(1, {c.n} + 1):\n"
        f"        {c.add(c.acc, c.i)}\n    return {c.acc}\n",
        f"{c.f}(100)",
    )


def t_vowels(c: Ctx) -> str:
    ch = c.rng.choice(["c", "ch", "letter", "char"])
    low = f"    {c.s} = {c.s}.lower()\n" if c.rng.random() < 0.7 else ""
    return c.demo(
        f"def {c.f}({c.s}):\n{low}    {c.acc} = 0\n    for {ch} in {c.s}:\n"
        f'        if {ch} in "aeiou":\n            {c.add(c.acc, "1")}\n    return {c.acc}\n',
        f'{c.f}("Python")',
    )


def t_snake(c: Ctx) -> str:
    return c.demo(
        f'def {c.f}({c.s}):\n    {c.s} = {c.s}.strip()\n    {c.s} = {c.s}.replace(" ", "_")\n    return {c.s}\n',
        f'{c.f}("hello world")',
    )


def t_index(c: Ctx) -> str:
    t = c.rng.choice(["target", "wanted", "y"])
    return c.demo(
        f"def {c.f}({c.l}, {t}):\n    for {c.i} in range(len({c.l})):\n        if {c.l}[{c.i}] == {t}:\n"
        f"            return {c.i}\n    return -1\n",
        f"{c.f}([5, 7, 9], 7)",
    )


def t_squares(c: Ctx) -> str:
    g = c.rng.choice(["square", "carre", "sq", "double"])
    op = "*" if g != "double" else "+"
    y = c.rng.choice(["y", "r", "value"])
    return c.demo(
        f"def {g}({c.x}):\n    return {c.x} {op} {c.x}\n\n\n"
        f"def {c.f}({c.l}):\n    {c.acc} = []\n    for {c.x} in {c.l}:\n        {y} = {g}({c.x})\n"
        f"        {c.acc}.append({y})\n    return {c.acc}\n",
        f"{c.f}([1, 2, 3])",
    )


def t_gcd(c: Ctx) -> str:
    return c.demo(
        f"def {c.f}(a, b):\n    if b == 0:\n        return a\n    return {c.f}(b, a % b)\n",
        f"{c.f}(48, 18)",
    )


def t_palin(c: Ctx) -> str:
    low = f"    {c.s} = {c.s}.lower()\n" if c.rng.random() < 0.6 else ""
    return c.demo(f"def {c.f}({c.s}):\n{low}    return {c.s} == {c.s}[::-1]\n", f'{c.f}("Kayak")')


def t_avg(c: Ctx) -> str:
    return c.demo(
        f"def {c.f}({c.l}):\n    if len({c.l}) == 0:\n        return 0\n    return sum({c.l}) / len({c.l})\n",
        f"{c.f}([2, 4, 6])",
    )


TEMPLATES: dict[str, Callable[[Ctx], str]] = {
    "sum": t_sum,
    "count": t_count,
    "fact": t_fact,
    "fib": t_fib,
    "digits": t_digits,
    "power": t_power,
    "rev": t_rev,
    "evens": t_evens,
    "basket": t_basket,
    "clean": t_clean,
    "median": t_median,
    "sorted": t_sorted,
    "max": t_max,
    "gauss": t_gauss,
    "vowels": t_vowels,
    "snake": t_snake,
    "index": t_index,
    "squares": t_squares,
    "gcd": t_gcd,
    "palin": t_palin,
    "avg": t_avg,
}


# ---------------------------------------------------------------------------------------------------------
# Mutation operators: each returns the mutated source, or None when it does not apply to this source.


def _pick_sub(
    rng: random.Random, pattern: re.Pattern[str], repl: Callable[[re.Match[str]], str], code: str
) -> str | None:
    matches = list(pattern.finditer(code))
    if not matches:
        return None
    m = rng.choice(matches)
    return code[: m.start()] + repl(m) + code[m.end() :]


RETURN_RE = re.compile(r"^(?P<ind>[ \t]+)return (?P<expr>.+)$", re.M)


def m_print_instead_of_return(rng: random.Random, code: str) -> str | None:
    return _pick_sub(rng, RETURN_RE, lambda m: f"{m['ind']}print({m['expr']})", code)


RANGE_RULES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(r"range\(len\((\w+)\)\)"), lambda m: f"range(len({m[1]}) - 1)"),
    (re.compile(r"range\(len\((\w+)\) - 1\)"), lambda m: f"range(len({m[1]}))"),
    (re.compile(r"range\(1, (\w+) \+ 1\)"), lambda m: f"range(1, {m[1]})"),
    (re.compile(r"range\(1, len\((\w+)\)\)"), lambda m: f"range(1, len({m[1]}) + 1)"),
]


def m_off_by_one_range(rng: random.Random, code: str) -> str | None:
    rules = [(p, r) for p, r in RANGE_RULES if p.search(code)]
    if not rules:
        return None
    pattern, repl = rng.choice(rules)
    return _pick_sub(rng, pattern, repl, code)


DEF_RE = re.compile(r"^def (\w+)\(", re.M)


def m_missing_base_case(rng: random.Random, code: str) -> str | None:
    for m in DEF_RE.finditer(code):
        name = m[1]
        body_start = code.index("\n", m.end()) + 1
        nxt = DEF_RE.search(code, body_start)
        body = code[body_start : nxt.start() if nxt else len(code)]
        if f"{name}(" not in body:
            continue  # not recursive
        base = re.match(r"(?P<ind>[ \t]+)if [^\n]+:\n(?P=ind)[ \t]+return [^\n]+\n", body)
        if base:
            return code[:body_start] + body[base.end() :] + code[body_start + len(body) :]
    return None


MUTABLE_RE = re.compile(
    r"def (?P<f>\w+)\((?P<pre>[^)]*?)(?P<arg>\w+)=None\):\n(?P<ind>[ \t]+)if (?P=arg) is None:\n"
    r"(?P=ind)[ \t]+(?P=arg) = (?P<empty>\[\]|\{\})\n"
)


def m_mutable_default_argument(rng: random.Random, code: str) -> str | None:
    return _pick_sub(rng, MUTABLE_RE, lambda m: f"def {m['f']}({m['pre']}{m['arg']}={m['empty']}):\n", code)


EQ_RE = re.compile(r" (==|!=) ")


def m_comparison_with_is(rng: random.Random, code: str) -> str | None:
    return _pick_sub(rng, EQ_RE, lambda m: " is " if m[1] == "==" else " is not ", code)


UNUSED_RE = re.compile(
    r"^(?P<ind>[ \t]+)(?P<var>\w+) = (?P<call>(?:(?P=var)\.\w+\(.*\)|sorted\((?P=var)\)"
    r"|list\(sorted\((?P=var)\)\)|(?P<fn>\w+)\(.*\)))$",
    re.M,
)


def m_unused_return_value(rng: random.Random, code: str) -> str | None:
    defined = set(DEF_RE.findall(code))
    matches = [m for m in UNUSED_RE.finditer(code) if m["fn"] is None or m["fn"] in defined]
    if not matches:
        return None
    m = rng.choice(matches)
    call = m["call"].removeprefix("list(").removesuffix(")") if m["call"].startswith("list(") else m["call"]
    return code[: m.start()] + f"{m['ind']}{call}" + code[m.end() :]


MUTATIONS: dict[str, Callable[[random.Random, str], str | None]] = {
    "print_instead_of_return": m_print_instead_of_return,
    "off_by_one_range": m_off_by_one_range,
    "missing_base_case": m_missing_base_case,
    "mutable_default_argument": m_mutable_default_argument,
    "comparison_with_is": m_comparison_with_is,
    "unused_return_value": m_unused_return_value,
}


# Relative chance of an applicable operator to be picked: print_instead_of_return applies to almost
# every snippet, so it is down-weighted to keep the labels roughly balanced.
MUTATION_WEIGHTS = {name: 3.0 for name in MUTATIONS} | {
    "print_instead_of_return": 1.0,
    "mutable_default_argument": 8.0,
}


def make_snippet(rng: random.Random) -> tuple[str, list[str]]:
    family = rng.choice(sorted(TEMPLATES))
    code = TEMPLATES[family](Ctx(rng, family))
    wanted = rng.choices([0, 1, 2], weights=[3, 5, 2])[0]
    applied: list[str] = []
    while len(applied) < wanted:
        candidates: dict[str, str] = {}
        for name in sorted(MUTATIONS):
            if name in applied:
                continue
            mutated = MUTATIONS[name](rng, code)
            if mutated is not None and mutated != code:
                candidates[name] = mutated
        if not candidates:
            break
        names = sorted(candidates)
        name = rng.choices(names, weights=[MUTATION_WEIGHTS[n] for n in names])[0]
        code = candidates[name]
        applied.append(name)
    labels = sorted(applied, key=LABELS.index) if applied else ["correct"]
    return code, labels


def format_snippet(code: str, labels: list[str]) -> str:
    return code.rstrip("\n") + "\n" + LABEL_SPLITTER + MULTI_LABELS.join(labels) + SNIPPET_SPLITTER


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "data")
    parser.add_argument("--sizes", type=int, nargs=3, default=[320, 80, 80], metavar=("TRAIN", "VAL", "TEST"))
    args = parser.parse_args()

    rng = random.Random(args.seed)  # noqa: S311 - reproducible data, not cryptography
    seen: set[str] = set()
    snippets: list[tuple[str, list[str]]] = []
    while len(snippets) < sum(args.sizes):
        code, labels = make_snippet(rng)
        if code not in seen:  # no duplicate code, hence no leak between the splits
            seen.add(code)
            snippets.append((code, labels))

    args.out.mkdir(parents=True, exist_ok=True)
    start = 0
    for split, size in zip(("train", "validation", "test"), args.sizes, strict=True):
        part = snippets[start : start + size]
        start += size
        text = "".join(format_snippet(code, labels) for code, labels in part)
        (args.out / f"{split}.txt").write_text(text, encoding="utf-8")
        counts: dict[str, int] = {}
        for _, labels in part:
            for label in labels:
                counts[label] = counts.get(label, 0) + 1
        print(
            f"{split}: {len(part)} snippets, {len(text)} bytes, "
            + ", ".join(f"{k}={counts[k]}" for k in sorted(counts))
        )


if __name__ == "__main__":
    main()

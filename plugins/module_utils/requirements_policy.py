"""Apply the module policy to a requirements file before the one pip run that installs it.

Runs ON THE CLUSTER with the venv's Python, the modules loaded; Python >= 3.10, the stdlib and
packaging (pip's vendored copy when packaging is not installed). A module_utils of the collection
cesres.ctl: the module cesres_venv (module_utils/provision.py) writes it beside the plan and runs it as a
file with the venv's Python:

  python3 requirements_policy.py plan REQ OUTDIR [--protect NAME]... [--provided JSON] [--all]
      Writes OUTDIR/requirements.txt (REQ filtered, same line numbers) and
      OUTDIR/constraints.txt, then prints ONE JSON object on stdout (one line):
        {"kept_module": [{"line", "requirement", "name", "module", "module_version", "message"}],
         "shadowed":    [same keys: pure-Python module packages the file asks at another version;
                         their lines stay, the venv installs its own copy],
         "constraints": [{"requirement": "torch==1.12.1", "name", "module", "reason"}],
         "install":     [requirement and option lines of OUTDIR/requirements.txt],
         "met":         [plain lines that what Python finds first already meets: pip would answer
                         "already satisfied", so they are commented out (unless --all) and keep
                         their pins; a changed pin re-runs pip for that line only],
         "pins":        [the exact pins of those lines, as constraints],
         "warnings":    [strings], "requirements": PATH, "constraints_file": PATH, "pins_file": PATH}
      and OUTDIR/pins.txt (the constraints and the pins), then install with ONE resolver run:
        PIP_CONSTRAINT=OUTDIR/pins.txt pip install -r OUTDIR/requirements.txt -c OUTDIR/constraints.txt
      The file is a freeze of a working environment: with its pins in PIP_CONSTRAINT, every pip that
      runs meanwhile installs its versions too, also one that a package's setup script starts while
      pip reads its metadata (checklist 0.0.11 runs `pip install jupyter`: unpinned, that brings
      notebook 7, which its setup script cannot use). Build environments get the same pins, which
      name no build tool unless the file does.
  python3 requirements_policy.py provided
      Prints the module-provided distributions found: {name: {version, module, compiled, ...}}.
  python3 requirements_policy.py pip-check
      Runs pip check with this interpreter and prints ONE JSON object: {"fatal": [lines], "reported":
      [messages]}. A line is reported, not fatal, when the distribution it finds wanting is a module's
      copy that comes before the venv on sys.path (PYTHONPATH: the venv cannot change which copy
      Python finds), or when the distribution that requires it is not the venv's own.
  python3 requirements_policy.py explain-conflict [PIP_OUTPUT|-] [--requirements REQ]
      Reads pip's output of a failed run (stdin by default) and prints ONE line naming the
      requirement lines in conflict and why.
  python3 requirements_policy.py imports ENTRY
      Imports every module that the program ENTRY imports at its top level (in try blocks too), as
      the job will run it (from ENTRY's directory), and prints the first that fails, with why (nothing
      when all import).
Exit status: 0 done, 2 usage or unreadable input.

The policy. A distribution is provided by a module when it is found outside the venv: under a
PYTHONPATH entry, an EasyBuild root ($EBROOT<NAME>) or the base interpreter's prefix. It is
PROTECTED when its name is a framework (torch, torchvision, torchaudio, tensorflow, numpy, scipy,
pandas, and every --protect NAME) or it holds compiled files (.so in its RECORD, or a WHEEL with
Root-Is-Purelib: false). A requirement line asking a protected distribution at a version the
module does not give is dropped (commented out in the output) and reported in "kept_module";
every protected distribution is pinned at its module version in constraints.txt, so pip can
never replace it. Pure-Python module packages are not constrained: their lines stay, and those
asking another version are reported in "shadowed". Comments, blank lines and options pass
through; relative paths of -r/-c/-e/-f options are made absolute. Names are compared
PEP 503-normalised. The pure functions (plan, explain_conflict, discover_provided) take plain
data, so that the controller's tests can load this file with importlib and call them.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.metadata as md
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

try:
    from packaging.requirements import InvalidRequirement
    from packaging.requirements import Requirement as PackagingRequirement
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version
except ImportError:  # not installed in this environment: every venv's pip vendors it
    from pip._vendor.packaging.requirements import InvalidRequirement  # type: ignore[assignment]
    from pip._vendor.packaging.requirements import Requirement as PackagingRequirement  # type: ignore[assignment]
    from pip._vendor.packaging.specifiers import InvalidSpecifier, SpecifierSet  # type: ignore[assignment]
    from pip._vendor.packaging.version import InvalidVersion, Version  # type: ignore[assignment]

FRAMEWORKS = ("torch", "torchvision", "torchaudio", "tensorflow", "numpy", "scipy", "pandas")
COMPILED_SUFFIXES = (".so", ".pyd", ".dylib")

# --- names, versions, specifiers (packaging's, as pip reads them) ----------------------------------


def normalize(name: str) -> str:
    """PEP 503 normalised name: `PyYAML` -> `pyyaml`, `ruamel.yaml` -> `ruamel-yaml`."""
    return re.sub(r"[-_.]+", "-", name).lower().strip()


def satisfies(version: str, specifier: str) -> bool | None:
    """Whether `version` meets `specifier` (">=1.0,<2"), pre-releases included; None when either cannot be read."""
    spec = specifier.strip()
    if spec.startswith("(") and spec.endswith(")"):
        spec = spec[1:-1]
    try:
        return SpecifierSet(spec).contains(Version(version), prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        return None


def valid_version(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True


# --- requirement lines --------------------------------------------------------------------------

_COMMENT_RE = re.compile(r"(^|\s+)#.*$")
_OPTION_SPLIT_RE = re.compile(r"\s+(?=--?[A-Za-z])")
_PATH_OPTIONS = {"-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-f", "--find-links"}


class Requirement:
    """One plain requirement (`name[extras] spec ; marker`) read from a requirements line."""

    def __init__(self, text: str, parsed: PackagingRequirement) -> None:
        self.text = text
        self.name = parsed.name
        self.key = normalize(parsed.name)
        self.specifier = str(parsed.specifier)
        self.marker = text.partition(";")[2].strip() if parsed.marker else ""  # as written, for messages
        self.url = parsed.url or ""
        self.extras = sorted(parsed.extras)
        self._clauses = list(parsed.specifier)

    def asks(self) -> str:
        """What the line asks, for messages: `1.12.0` for a single ==, else the specifier."""
        if self.url:
            return f"a direct reference ({self.url})"
        if len(self._clauses) == 1:
            clause = self._clauses[0]
            if clause.operator in ("==", "===") and not clause.version.endswith(".*"):
                return clause.version
        return self.specifier or "any version"


def parse_requirement(text: str) -> Requirement | None:
    """The requirement in a (comment-free, option-free) line, or None if it is not one (a path, a URL)."""
    try:
        return Requirement(text.strip(), PackagingRequirement(text))
    except InvalidRequirement:
        return None


def logical_lines(lines: Sequence[str]) -> list[tuple[int, int, str]]:
    """(first line number, number of physical lines, text) with backslash continuations joined."""
    out = []
    i = 0
    while i < len(lines):
        start = i
        text = lines[i].rstrip("\r\n")
        while text.endswith("\\") and i + 1 < len(lines):
            i += 1
            text = text[:-1] + lines[i].rstrip("\r\n")
        out.append((start + 1, i - start + 1, text))
        i += 1
    return out


def _absolute(value: str, base_dir: str | None) -> str:
    if base_dir is None or "://" in value or value.startswith(("/", "~", "$")) or not value:
        return value
    if value.startswith("git+") or ":" in value.split("/", 1)[0]:
        return value
    return str((Path(base_dir) / value).resolve())


def _rewrite_option(text: str, base_dir: str | None) -> tuple[str, str | None]:
    """An option line with relative paths made absolute; also the nested file it names, if any."""
    match = re.match(r"(\s*)(--?[A-Za-z-]+)(\s*=\s*|\s+)(\S+)(.*)$", text)
    if not match or match[2] not in _PATH_OPTIONS:
        return text, None
    value = match[4]
    path_like = value.startswith(("./", "../")) or value in (".", "..")
    local = path_like or (match[2] not in ("-e", "--editable") and "://" not in value)
    new_value = _absolute(value, base_dir) if local else value
    nested = new_value if match[2] in ("-r", "--requirement", "-c", "--constraint") else None
    return f"{match[1]}{match[2]}{match[3]}{new_value}{match[5]}", nested


# --- the policy ---------------------------------------------------------------------------------


def protected_names(
    provided: Mapping[str, Mapping[str, Any]], protect: Iterable[str] = (), frameworks: bool = True
) -> dict[str, Any]:
    """{normalised name: reason} of the provided distributions that pip must never replace."""
    names = {normalize(n) for n in protect}
    if frameworks:
        names.update(FRAMEWORKS)
    out = {}
    for raw, info in provided.items():
        key = normalize(raw)
        if key in names:
            out[key] = "framework"
        elif info.get("compiled"):
            out[key] = "compiled"
    return out


def plan(
    lines: Sequence[str],
    provided: Mapping[str, Mapping[str, Any]],
    protect: Iterable[str] = (),
    *,
    frameworks: bool = True,
    base_dir: str | None = None,
    installed: Mapping[str, str] | None = None,
    required_by: Mapping[str, Sequence[tuple[str, str]]] | None = None,
) -> dict[str, Any]:
    """Apply the policy to requirement lines.

    provided: {distribution name: {"version": str, "module": str, "compiled": bool}} (what the
    loaded modules give). installed: {normalised name: version} of what Python finds first (None: do
    not look); a plain line (no URL, extras or marker) that this version meets is "met": pip would
    answer "already satisfied", so it is left out of the file (commented) but keeps its pin. Unless a
    line that does go to pip pins a version that an installed distribution does not accept (required_by:
    {normalised name: [(distribution, specifier)]}, from the venv's own distributions): then every line
    goes to pip, so that its one resolver run names the conflict, changing nothing. Returns
    {"kept_module", "shadowed", "constraints", "install", "met", "pins", "warnings", "lines"}; "lines"
    is the filtered file (same line numbers as `lines`), without newlines.
    """
    by_key = {normalize(name): dict(info, name=info.get("name") or name) for name, info in provided.items()}
    protected = protected_names(provided, protect, frameworks)
    kept_module: list[dict[str, Any]] = []
    shadowed: list[dict[str, Any]] = []
    warnings: list[str] = []
    install: list[str] = []
    met: list[str] = []
    out_lines: list[str] = []
    clash = _refused_by_installed(lines, installed or {}, required_by or {})
    if clash:
        warnings.append(f"pip gets every line: {clash}")
        installed = None

    def keep(req: Requirement, body: str, text: str, pad: list[str]) -> None:
        """The line goes to pip, unless what Python finds already meets it."""
        version = (installed or {}).get(req.key)
        if version and not (req.url or req.marker or req.extras) and satisfies(version, req.specifier):
            met.append(body)
            out_lines.extend([f"# cesres: already installed ({req.name} {version}): {text}", *pad])
        else:
            install.append(body)
            out_lines.extend([text, *pad])

    for number, count, text in logical_lines(lines):
        body = _COMMENT_RE.sub("", text).strip()
        pad = [""] * (count - 1)
        if not body:
            out_lines += [text, *pad]
            continue
        if body.startswith("-"):
            new, nested = _rewrite_option(body, base_dir)
            if nested and re.match(r"\s*(-r|--requirement)\b", body):
                warnings.append(
                    f"line {number}: the nested file {nested} is not filtered; a clash there is a pip conflict"
                )
            out_lines += [new if new != body else text, *pad]
            install.append(new)
            continue
        requirement_part = _OPTION_SPLIT_RE.split(body, maxsplit=1)[0]
        req = parse_requirement(requirement_part)
        if req is None:
            new = _absolute(body, base_dir) if body.startswith(("./", "../")) else body
            out_lines += [new if new != body else text, *pad]
            install.append(new)
            continue
        info = by_key.get(req.key)
        if info is None:
            keep(req, body, text, pad)
            continue
        module_version = str(info.get("version", ""))
        ok = False if req.url else satisfies(module_version, req.specifier)
        entry = {
            "line": number,
            "requirement": req.text,
            "name": req.name,
            "module": info.get("module", "?"),
            "module_version": module_version,
        }
        where = f"module {entry['module']} gives {info['name']} {module_version}; the file asks {req.asks()}"
        if req.marker:
            where += f" (when {req.marker})"
        if req.key in protected:
            if ok:
                keep(req, body, text, pad)
                continue
            note = "" if ok is False else " (cannot compare the versions)"
            entry["message"] = f"{where}: kept the module's{note}"
            kept_module.append(entry)
            out_lines += [f"# cesres: kept module {entry['module']}'s {info['name']} {module_version}: {text}", *pad]
            continue
        keep(req, body, text, pad)
        if ok is None:
            warnings.append(
                f"line {number}: cannot compare {req.text} with module {entry['module']}'s {module_version}"
            )
        elif not ok:
            if info.get("pythonpath"):
                entry["message"] = (
                    f"{where}: the venv installs its own, but PYTHONPATH puts the module's first on sys.path"
                    " (at run time the venv's site-packages must come before PYTHONPATH)"
                )
            else:
                entry["message"] = f"{where}: the venv installs its own, which hides the module's"
            shadowed.append(entry)
    constraints = []
    for key, reason in sorted(protected.items()):
        info = by_key[key]
        copy = info.get("venv_copy")
        if copy:
            order = "which hides" if copy.get("first") else "behind"
            warnings.append(
                f"the venv has its own {info['name']} {copy.get('version')}, {order} module {info.get('module')}'s"
                f" {info.get('version')}: pip uninstall {info['name']} in the venv removes it"
            )
        version = str(info.get("version", ""))
        if not valid_version(version):
            warnings.append(
                f"{info['name']} {version!r} of module {info.get('module')}: not a PEP 440 version, not pinned"
            )
            continue
        constraints.append(
            {
                "requirement": f"{info['name']}=={version}",
                "name": info["name"],
                "module": info.get("module", "?"),
                "reason": reason,
            }
        )
    return {
        "kept_module": kept_module,
        "shadowed": shadowed,
        "constraints": constraints,
        "install": install,
        "met": met,
        "pins": exact_pins(install + met),
        "warnings": warnings,
        "lines": out_lines,
    }


def _refused_by_installed(
    lines: Sequence[str], installed: Mapping[str, str], required_by: Mapping[str, Sequence[tuple[str, str]]]
) -> str:
    """The first line that pip would get (what Python finds does not meet it) whose pinned version an installed
    distribution does not accept, said in words; empty when none."""
    for _number, _count, text in logical_lines(lines):
        body = _COMMENT_RE.sub("", text).strip()
        req = parse_requirement(_OPTION_SPLIT_RE.split(body, maxsplit=1)[0]) if body and body[0] != "-" else None
        if req is None or req.url:
            continue
        version = installed.get(req.key)
        if version and satisfies(version, req.specifier):
            continue
        pinned = req.asks()
        for by, specifier in required_by.get(req.key, ()):
            if valid_version(pinned) and satisfies(pinned, specifier) is False:
                return f"{req.text} is not what the installed {by} requires ({req.name}{specifier})"
    return ""


def exact_pins(install: Iterable[str]) -> list[str]:
    """The lines of `install` that pin one version (`name==version`, marker kept), as constraints: without
    extras (pip refuses them in a constraint) and options."""
    pins = []
    for line in install:
        req = parse_requirement(_OPTION_SPLIT_RE.split(line, maxsplit=1)[0]) if not line.startswith("-") else None
        if req is None or req.url:
            continue
        version = req.asks()
        if version == req.specifier or not valid_version(version):
            continue  # a range, or no version: nothing to hold another pip to
        pins.append(f"{req.name}=={version}" + (f" ; {req.marker}" if req.marker else ""))
    return pins


def constraints_text(result: Mapping[str, Any]) -> str:
    head = "# Generated by requirements_policy.py: the module-provided distributions pip must not replace.\n"
    body = "".join(f"{c['requirement']}  # module {c['module']}, {c['reason']}\n" for c in result["constraints"])
    return head + body


def pins_text(result: Mapping[str, Any]) -> str:
    """PIP_CONSTRAINT's file: the module constraints, then the file's own pins of other distributions."""
    constrained = {normalize(c["name"]) for c in result["constraints"]}
    pins = [pin for pin in result["pins"] if normalize(_name_of(pin)) not in constrained]
    head = "# Generated by requirements_policy.py: what every pip of this installation installs (PIP_CONSTRAINT).\n"
    return head + "".join(f"{c['requirement']}\n" for c in result["constraints"]) + "".join(f"{p}\n" for p in pins)


# --- pip check after the installation -------------------------------------------------------------

_CHECK_RE = re.compile(
    r"^(?P<by>\S+) (?P<by_version>\S+) (?:has requirement (?P<spec>(?P<needs>[A-Za-z0-9._-]+).*?), but you have "
    r"(?P<has>\S+) (?P<has_version>\S+?)\.?$|requires (?P<missing>\S+), which is not installed\.?$)"
)


def classify_check(
    lines: Iterable[str], provided: Mapping[str, Mapping[str, Any]], venv_names: Iterable[str]
) -> dict[str, Any]:
    """pip check's lines as {"fatal": [lines], "reported": [messages]} (see the pip-check command).

    provided: discover_provided()'s map (the module copies Python finds); venv_names: the distributions
    installed in the venv itself (normalised)."""
    ours = {normalize(name) for name in venv_names}
    by_key = {normalize(name): info for name, info in provided.items()}
    fatal: list[str] = []
    reported: list[str] = []
    for line in (raw.strip() for raw in lines):
        if not line or line.startswith("No broken requirements"):
            continue
        match = _CHECK_RE.match(line)
        needed = normalize(match["needs"] or match["missing"] or "") if match else ""
        module = by_key.get(needed)
        if match and match["needs"] and module and module.get("pythonpath"):
            reported.append(
                f"pip check: {match['by']} {match['by_version']} needs {match['spec']}, but module {module['module']}"
                f" puts {module.get('name', match['needs'])} {module['version']} on PYTHONPATH, before the venv:"
                " what Python imports (the venv cannot change it)"
            )
        elif normalize(line.split(" ", 1)[0]) not in ours:
            reported.append(f"pip check, outside the venv: {line}")
        else:
            fatal.append(line)
    return {"fatal": fatal, "reported": reported}


def _own(dists: Iterable[md.Distribution]) -> list[md.Distribution]:
    """Those of `dists` installed in this interpreter's own prefix (the venv)."""
    root = _resolved(sys.prefix)
    if root is None:
        return []
    return [dist for dist in dists if (where := _resolved(str(dist.locate_file("")))) and _inside(where, root)]


def venv_distributions(dists: Iterable[md.Distribution]) -> list[str]:
    """The distributions installed in this interpreter's own prefix (the venv), normalised."""
    return [normalize(dist.metadata["Name"] or "") for dist in _own(dists)]


# --- pip's output of a failed resolution ---------------------------------------------------------

_LINE_REF_RE = re.compile(r"-r (?P<file>.+?) \(line (?P<n>\d+)\)")
_COLLECT_RE = re.compile(r"^Collecting (?P<req>\S+).*\(from -r (?P<file>.+?) \(line (?P<n>\d+)\)\)\s*$")
_REQ_NAME_RE = re.compile(r"^\s*([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)")


def _name_of(text: str) -> str:
    match = _REQ_NAME_RE.match(text)
    return normalize(match[1]) if match else ""


def explain_conflict(output: str, lines: Sequence[str] | None = None) -> str:
    """One line naming the requirement lines in conflict and why, from pip's output."""
    text = output.replace("\r", "")
    line_of: dict[str, tuple[int, str]] = {}
    if lines is not None:
        for number, _count, logical in logical_lines(lines):
            body = _OPTION_SPLIT_RE.split(_COMMENT_RE.sub("", logical).strip(), maxsplit=1)[0]
            req = parse_requirement(body) if body and not body.startswith("-") else None
            if req is not None:
                line_of.setdefault(req.key, (number, req.text))
    for row in text.splitlines():
        match = _COLLECT_RE.match(row.strip())
        if match:
            line_of.setdefault(_name_of(match["req"]), (int(match["n"]), match["req"]))

    def where(requirement: str) -> str:
        hit = line_of.get(_name_of(requirement))
        return f"line {hit[0]} ({hit[1]})" if hit else requirement.strip()

    cannot = re.search(r"Cannot install (?P<what>.+?) because these package versions have conflicting", text)
    causes_block = re.search(r"The conflict is caused by:\n(?P<body>(?:[ \t]+\S.*\n?)+)", text)
    if cannot or causes_block:
        parties: list[str] = []
        if cannot:
            for item in re.split(r", | and ", cannot["what"]):
                ref = _LINE_REF_RE.fullmatch(item.strip())
                if ref:
                    number = int(ref["n"])
                    known = next((t for n, t in line_of.values() if n == number), None)
                    party = f"line {number} ({known})" if known else f"line {number}"
                else:
                    party = where(item)
                if party not in parties:
                    parties.append(party)
        reasons = []
        for raw in (causes_block["body"] if causes_block else "").splitlines():
            cause = raw.strip()
            if not cause:
                continue
            asked = re.match(r"The user requested \(constraint\) (.+)$", cause)
            user = re.match(r"The user requested (.+)$", cause)
            dep = re.match(r"(\S+) (\S+) depends on (.+)$", cause)
            if asked:
                reasons.append(f"the constraints pin {asked[1]} (a module's version)")
                party = f"the constraint {asked[1]}"
            elif user:
                reasons.append(f"the file asks {user[1]}")
                party = where(user[1])
            elif dep:
                reasons.append(f"{dep[1]} {dep[2]} depends on {dep[3]}")
                party = where(dep[1])
            else:
                reasons.append(cause)
                continue
            if party not in parties and not any(party.startswith(p + " ") for p in parties):
                parties.append(party)
        named = ", ".join(parties) or "the requirements"
        why = "; ".join(reasons) or "pip gives no cause"
        return f"pip cannot install these together: {named}: {why}"
    missing = re.search(r"No matching distribution found for (?P<req>\S+)(?P<origin>.*)$", text, re.MULTILINE)
    if missing:
        seen = re.search(r"Could not find a version that satisfies the requirement .*\(from versions: (.*)\)", text)
        versions = seen[1] if seen else "none"
        origin = missing["origin"].strip()
        named = where(missing["req"]) + (f" {origin}" if origin else "")
        return f"pip finds no installable release for {named} (versions it could use: {versions})"
    errors = [row.strip() for row in text.splitlines() if row.strip().startswith("ERROR:")]
    if errors:
        return f"pip failed: {errors[-1][len('ERROR:') :].strip()}"
    return "pip failed without a resolution error in its output"


# --- the import check after the installation ---------------------------------------------------------


def top_level_imports(source: str, filename: str = "<program>") -> list[str]:
    """The absolute modules that a program imports at its top level and in its top-level try blocks (where
    programs import optional packages), in order, each once."""
    names: list[str] = []
    for node in ast.parse(source, filename).body:
        for statement in node.body if isinstance(node, ast.Try) else [node]:
            if isinstance(statement, ast.Import):
                names += [alias.name for alias in statement.names]
            elif isinstance(statement, ast.ImportFrom) and statement.level == 0 and statement.module:
                names.append(statement.module)
    return [name for name in dict.fromkeys(names) if name != "__future__"]


def first_import_failure(names: Iterable[str]) -> str:
    """ "NAME (why)" for the first of `names` that does not import; "" when all do."""
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # whatever an import raises, said in one line
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return f"{name} ({detail})"
    return ""


# --- the environment on the cluster ---------------------------------------------------------------


def _resolved(path: str) -> Path | None:
    try:
        return Path(path).expanduser().resolve()
    except (OSError, RuntimeError):
        return None


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def module_roots(env: Mapping[str, str]) -> list[tuple[Path, str, str]]:
    """(root, module name, module full name) of each $EBROOT<NAME>, longest root first."""
    loaded = {}
    for entry in env.get("LOADEDMODULES", "").split(":"):
        if entry:
            name = entry.split("/", 1)[0]
            var = "EBROOT" + name.replace("+", "plus").replace("-", "min").replace(".", "").upper()
            loaded[var] = (name, entry)
    roots = []
    for var, value in env.items():
        if not var.startswith("EBROOT") or not value:
            continue
        root = _resolved(value)
        if root is None:
            continue
        if var in loaded:
            name, full = loaded[var]
        else:
            name = root.parent.name or var[len("EBROOT") :]
            full = f"{name}/{root.name}"
        roots.append((root, name, full))
    roots.sort(key=lambda item: len(str(item[0])), reverse=True)
    return roots


def _module_of(location: Path, roots: Sequence[tuple[Path, str, str]], fallback: str) -> tuple[str, str]:
    for root, name, full in roots:
        if _inside(location, root):
            return name, full
    parts = location.parts
    for i in range(len(parts) - 2):
        if parts[i] == "software":
            return parts[i + 1], f"{parts[i + 1]}/{parts[i + 2]}"
    return fallback, fallback


def is_compiled(dist: md.Distribution) -> bool:
    """True when the distribution holds compiled files (WHEEL, RECORD/installed-files, or its packages)."""
    try:
        wheel = dist.read_text("WHEEL") or ""
        if re.search(r"^Root-Is-Purelib:\s*false\s*$", wheel, re.MULTILINE | re.IGNORECASE):
            return True
        if any(str(f).endswith(COMPILED_SUFFIXES) or ".so." in str(f) for f in dist.files or ()):
            return True
        if dist.read_text("RECORD") is not None or dist.read_text("installed-files.txt") is not None:
            return False
        # An egg-info without a list of installed files (SOURCES.txt lists sources): look at its packages.
        base = Path(str(dist.locate_file("")))
        for top in (dist.read_text("top_level.txt") or "").split():
            package = base / top
            if package.is_dir() and any(p.suffix in COMPILED_SUFFIXES for p in package.rglob("*")):
                return True
            if any(base.glob(f"{top}.*.so")) or (base / f"{top}.so").exists():
                return True
    except OSError:
        return False
    return False


def discover_provided(
    dists: Iterable[md.Distribution], env: Mapping[str, str], venv_prefix: str | None, base_prefix: str
) -> dict[str, Any]:
    """The module-provided distributions, {name: info}, from `dists` in sys.path order.

    A distribution is module-provided when it lies outside the venv (venv_prefix; None when the
    interpreter is not a venv's) and under a PYTHONPATH entry, an $EBROOT* root or base_prefix.
    The first one found per name is the one Python imports. info: name, version, module,
    module_full, compiled, pythonpath (True: on PYTHONPATH, which comes before the venv's
    site-packages on sys.path), location, and venv_copy ({version, first}) when the venv holds
    its own copy too (first: the venv's copy is the one imported).
    """
    venv = _resolved(venv_prefix) if venv_prefix else None
    roots = module_roots(env)
    pythonpath = [p for p in (_resolved(e) for e in env.get("PYTHONPATH", "").split(os.pathsep) if e) if p]
    base = _resolved(base_prefix)
    base_label = _module_of(base, roots, f"base Python ({base})") if base else ("base Python", "base Python")
    provided: dict[str, dict[str, Any]] = {}
    in_venv: dict[str, dict[str, Any]] = {}
    for dist in dists:
        name = (dist.metadata["Name"] or "").strip()
        location = _resolved(str(dist.locate_file("")))
        if not name or location is None:
            continue
        key = normalize(name)
        if venv is not None and _inside(location, venv):
            in_venv.setdefault(key, {"version": dist.version, "first": key not in provided})
            continue
        if key in provided:
            continue
        on_path = any(_inside(location, p) for p in pythonpath)
        if on_path or any(_inside(location, root) for root, _n, _f in roots):
            module, full = _module_of(location, roots, f"PYTHONPATH entry {location}")
        elif base is not None and _inside(location, base):
            module, full = base_label
        else:
            continue  # user site-packages and the like: not a module's
        provided[key] = {
            "name": name,
            "version": dist.version,
            "module": module,
            "module_full": full,
            "compiled": is_compiled(dist),
            "pythonpath": on_path,
            "location": str(location),
        }
    for key, copy in in_venv.items():
        if key in provided:
            provided[key]["venv_copy"] = copy
    return provided


def installed_versions(dists: Sequence[md.Distribution]) -> dict[str, str]:
    """{normalised name: version} of each distribution: the venv's own copy, else the one Python finds first.
    A venv's copy that a module's on PYTHONPATH hides is what a pip run of its line would install again."""
    first: dict[str, str] = {}
    for dist in dists:
        first.setdefault(normalize(dist.metadata["Name"] or ""), dist.version)
    own = {normalize(dist.metadata["Name"] or ""): dist.version for dist in reversed(_own(dists))}
    return {name: version for name, version in {**first, **own}.items() if name}


def venv_requirements(dists: Sequence[md.Distribution]) -> dict[str, list[tuple[str, str]]]:
    """{normalised name: [(distribution, specifier)]}: what the venv's own distributions require of each name
    (optional extras left out), as pip check reads it."""
    out: dict[str, list[tuple[str, str]]] = {}
    for dist in _own(dists):
        for text in dist.requires or []:
            try:
                parsed = PackagingRequirement(text)
            except InvalidRequirement:
                continue
            if parsed.marker is not None and ("extra" in str(parsed.marker) or not parsed.marker.evaluate()):
                continue
            out.setdefault(normalize(parsed.name), []).append((dist.metadata["Name"] or "", str(parsed.specifier)))
    return out


def current_provided(dists: Iterable[md.Distribution] | None = None) -> dict[str, Any]:
    venv_prefix = sys.prefix if sys.prefix != sys.base_prefix else None
    return discover_provided(md.distributions() if dists is None else dists, os.environ, venv_prefix, sys.base_prefix)


# --- command line -------------------------------------------------------------------------------


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    return Path(path).read_text(encoding="utf-8", errors="replace")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="requirements_policy.py", description=(__doc__ or "").split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_plan = sub.add_parser("plan", help="filter REQ into OUTDIR/requirements.txt and OUTDIR/constraints.txt")
    p_plan.add_argument("requirements")
    p_plan.add_argument("outdir")
    p_plan.add_argument("--protect", action="append", default=[], metavar="NAME", help="another framework name")
    p_plan.add_argument("--no-default-frameworks", action="store_true", help="protect only --protect and compiled")
    p_plan.add_argument("--provided", metavar="JSON", help="read the provided distributions from this file")
    p_plan.add_argument("--all", action="store_true", help="give pip every line, also those already met")
    sub.add_parser("provided", help="print the module-provided distributions as JSON")
    sub.add_parser("pip-check", help="run pip check; print its fatal lines and the reported ones as JSON")
    p_explain = sub.add_parser("explain-conflict", help="one line from pip's output of a failed run")
    p_explain.add_argument("pip_output", nargs="?", default="-")
    p_explain.add_argument("--requirements", metavar="REQ", help="the requirements file pip was given")
    p_imports = sub.add_parser("imports", help="import what ENTRY imports at its top; print the first failure")
    p_imports.add_argument("entry")
    args = parser.parse_args(argv)
    try:
        if args.command == "provided":
            provided = current_provided()
            print(json.dumps(provided, sort_keys=True))
            return 0
        if args.command == "pip-check":
            done = subprocess.run(
                [sys.executable, "-m", "pip", "--disable-pip-version-check", "check"],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                check=False,
            )
            lines = done.stdout.splitlines() if done.returncode != 0 else []
            dists = list(md.distributions())
            print(json.dumps(classify_check(lines, current_provided(dists), venv_distributions(dists))))
            return 0
        if args.command == "imports":
            entry = Path(args.entry).resolve()
            # As `python3 ENTRY` finds its modules: from ENTRY's directory first, not from this file's.
            sys.path[0] = str(entry.parent)
            print(first_import_failure(top_level_imports(entry.read_text(encoding="utf-8"), str(entry))))
            return 0
        if args.command == "explain-conflict":
            given = _read(args.requirements).splitlines() if args.requirements else None
            print(explain_conflict(_read(args.pip_output), given))
            return 0
        # One reading of the installed distributions serves the three questions.
        dists = list(md.distributions())
        provided = json.loads(_read(args.provided)) if args.provided else current_provided(dists)
        req_path = Path(args.requirements).expanduser()
        lines = req_path.read_text(encoding="utf-8").splitlines()
        result = plan(
            lines,
            provided,
            args.protect,
            frameworks=not args.no_default_frameworks,
            base_dir=str(req_path.parent.resolve()),
            installed=None if args.all else installed_versions(dists),
            required_by=None if args.all else venv_requirements(dists),
        )
        outdir = Path(args.outdir).expanduser()
        outdir.mkdir(parents=True, exist_ok=True)
        filtered, constraints, pins = outdir / "requirements.txt", outdir / "constraints.txt", outdir / "pins.txt"
        filtered.write_text("\n".join(result.pop("lines")) + "\n", encoding="utf-8")
        constraints.write_text(constraints_text(result), encoding="utf-8")
        pins.write_text(pins_text(result), encoding="utf-8")
        result["requirements"], result["constraints_file"], result["pins_file"] = (
            str(filtered),
            str(constraints),
            str(pins),
        )
        print(json.dumps(result))
        return 0
    except (OSError, ValueError) as err:
        print(f"requirements_policy.py {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""``run.py --describe TRIAL``: a trial's params, metrics and the experiments that use it.

Everything is read from the trial module: the ``Params`` dataclass (type, default, and the
comment on the line(s) above or at the end of each field, parsed from the source) and the
module's ``METRICS`` dict; derived columns come from memo.run.measures.
"""

import ast
import dataclasses
import inspect
import io
import json
import textwrap
import tokenize

from memo.run import measures
from memo.store import paths
from memo.run.spec import type_text
from memo.run.trial_lookup import TRIAL_ALIASES, known_trials, trial_hints, trial_module


def field_comments(cls: type) -> tuple:
    """({field: comment}, {field: section}) of a dataclass, from its source: the comment at
    the end of a field's line, else the comment lines right above it. A comment block
    above a field that has its own end-of-line comment is a section heading ("# data")."""
    source = textwrap.dedent(inspect.getsource(cls))
    comments = {}  # line number -> comment text
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    lines = source.splitlines()
    docs, sections = {}, {}
    for node in ast.parse(source).body[0].body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        name = node.target.id
        inline = [comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments]
        above, n = [], node.lineno - 1
        while n >= 1 and lines[n - 1].lstrip().startswith("#"):
            above.insert(0, comments[n])
            n -= 1
        if inline:
            docs[name] = " ".join(inline)
            if above:
                sections[name] = " ".join(above)
        elif above:
            docs[name] = " ".join(above)
    return docs, sections


def experiments_using(trial: str) -> list:
    """Names of the experiments/*.json whose "trial" is ``trial`` (or its alias)."""
    names = []
    for path in sorted(paths.experiments_dir().glob("*.json")):
        try:
            declared = json.loads(path.read_text(encoding="utf-8")).get("trial")
        except (ValueError, OSError, AttributeError):
            continue  # run.py --name reports a broken file; here it just uses nothing
        if TRIAL_ALIASES.get(declared, declared) == trial:
            names.append(path.stem)
    return names


def describe(trial: str) -> str:
    """The reference text of trial module ``trial`` (a name in trials/ or an alias)."""
    trial = TRIAL_ALIASES.get(trial, trial)
    module = trial_module(trial)
    cls = module.Params
    docs, sections = field_comments(cls)
    hints = trial_hints(trial)
    summary = (inspect.getdoc(module) or "").split("\n\n")[0].replace("\n", " ")
    out = [f"trial {trial}: {summary}".rstrip(), "", "params (type) = default: meaning"]
    for field in dataclasses.fields(cls):
        if field.name in sections:
            out.append(f"  [{sections[field.name]}]")
        default = json.dumps(field.default) if field.default is not dataclasses.MISSING else "-"
        out.append(f"  {field.name} ({type_text(hints[field.name])}) = {default}: ")
        out[-1] += docs.get(field.name, "(no comment)")
    out.append("  seed (int) = a hash of the other params: the run's random seed (any trial)")
    out.append("  restart (int) = 0: a repetition number; a new value gives a new seed (any trial)")
    metrics = getattr(module, "METRICS", None)
    out += ["", "metrics:"]
    if metrics:
        width = max(map(len, metrics))
        out += [f"  {name:<{width}}  {meaning}" for name, meaning in metrics.items()]
    else:
        out.append(f"  (trials/{trial}.py declares no METRICS)")
    derived = [
        f"  {name}: {m.doc} (from {', '.join(m.reads)})"
        for name, m in measures.DERIVED.items()
        if name not in (metrics or {}) and all(r in (metrics or {}) or r in hints for r in m.reads)
    ]
    if derived:
        out += ["", "derived columns (plots compute them):", *derived]
    used = experiments_using(trial)
    out += ["", f"experiments: {', '.join(used) or 'none'}"]
    return "\n".join(out)


def unknown_trial(name: str) -> str:
    """The one-line error for a trial name that --describe does not know."""
    import difflib

    known = known_trials()
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"no trial {name!r}{hint}; known trials: {', '.join(known)}"

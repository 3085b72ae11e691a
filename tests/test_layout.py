"""memo/ is laid out in layers: no module imports one above it, and no imports go in a circle.

The imports are read from the source (every ``import``, also those inside functions), so
a lazy import that climbs up or closes a circle fails here as well.
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Lowest first: a module may import its own layer and those below it.
LAYERS = [
    ("memo._moved",),
    ("memo.store",),
    ("memo.datasets",),
    ("memo.nets", "memo.kernels", "memo.memorize"),
    ("memo.training",),
    ("memo.run",),
    ("memo.backends", "memo.plots"),
]


def module_names() -> dict:
    names = {}
    for path in (ROOT / "memo").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imports_of(path: Path, known: dict) -> set:
    """The memo modules ``path`` imports (``from memo.x import y`` names memo.x.y if that
    is a module, else memo.x)."""

    def module(name):
        while name not in known:
            name = name.rpartition(".")[0]
        return name

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {module(a.name) for a in node.names if a.name.startswith("memo.")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("memo"):
            for a in node.names:
                full = f"{node.module}.{a.name}"
                found.add(full if full in known else module(node.module))
    return found - {"memo"}


def graph() -> dict:
    known = module_names()
    return {name: imports_of(path, known) - {name} for name, path in known.items()}


def layer(name: str) -> int:
    for level, packages in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in packages):
            return level
    raise AssertionError(f"{name} is in no layer of LAYERS: add its package there")


def test_every_module_sits_in_a_layer_and_imports_none_above_it():
    upward = [
        f"{name} imports {dep}"
        for name, deps in graph().items()
        if name != "memo"
        for dep in sorted(deps)
        if layer(dep) > layer(name)
    ]
    assert upward == []


def test_no_import_circles():
    edges = graph()
    circles, state = [], {}

    def visit(name, trail):
        state[name] = "open"
        for dep in sorted(edges[name]):
            if state.get(dep) == "open":
                circles.append(" -> ".join(trail[trail.index(dep) :] + [dep]))
            elif dep not in state:
                visit(dep, trail + [dep])
        state[name] = "done"

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert circles == []


def test_the_walk_sees_a_circle_and_an_upward_import(tmp_path, monkeypatch):
    """The checks above would catch a lazy import from the store up to a backend."""
    fake = tmp_path / "memo"
    (fake / "store").mkdir(parents=True)
    (fake / "backends").mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "store" / "__init__.py").write_text("")
    (fake / "backends" / "__init__.py").write_text("from memo.store import claims\n")
    (fake / "store" / "claims.py").write_text("def f():\n    from memo.backends import x\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    edges = graph()
    assert edges["memo.store.claims"] == {"memo.backends"}
    assert layer("memo.backends") > layer("memo.store.claims")


def test_old_module_names_still_import_with_a_note():
    """Notebooks' ``import memo.spec`` keeps working for a release, with one warning."""
    code = (
        "import warnings; warnings.simplefilter('always')\n"
        "import memo.spec, memo.run.spec\n"
        "assert memo.spec is memo.run.spec\n"
        "from memo.store import load_results, Store\n"
        "from memo.worker import run_point\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if "FutureWarning" in line]
    assert len(notes) == 2 and "memo.spec moved to memo.run.spec" in notes[0]


def test_readme_layout_names_every_package():
    """README's layout tree lists each package of memo/ with a line saying what it holds."""
    text = (ROOT / "README.md").read_text()
    tree = text[text.index("## How it is built") :]
    packages = sorted(p.parent.name for p in (ROOT / "memo").glob("*/__init__.py"))
    missing = [p for p in packages if not re.search(rf"^\s*[│├└─ ]*{p}/ ", tree, re.M)]
    assert missing == []
    loose = sorted(p.name for p in (ROOT / "memo").glob("*.py") if p.name != "__init__.py")
    assert loose == ["_moved.py"], "memo/ holds packages; put a new module into one"


@pytest.mark.parametrize("package", sorted(p.parent for p in (ROOT / "memo").glob("*/__init__.py")))
def test_each_package_says_its_role(package):
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
    assert doc and len(doc) > 40, f"{package.name}/__init__.py: a docstring saying its role"

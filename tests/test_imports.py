"""The house rules on imports: no cycles between portaclass modules, and no
module imports a framework until keras is used (the lazy handle)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import portaclass
from tests.helpers import run_python

PACKAGE = Path(portaclass.__file__).parent
# Modules that subclass Keras classes (PyDataset, Callback) load keras when
# imported; the rest of the package reaches them through lazy handles.
# one module per backend, each importing its framework: the adaptation layer
# and the data-parallel engines
BACKEND_ADAPTERS = ("portaclass.backend", "portaclass.train.distributed._")
KERAS_AT_IMPORT = {"portaclass.data.pipeline", "portaclass.train.callbacks", "portaclass.train.fit"}


def _module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names[".".join(parts).removesuffix(".__init__")] = path
    return names


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """portaclass modules ``module`` imports anywhere in its file (function
    bodies included); a child importing its own package does not count."""
    found = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != module and not module.startswith(target + "."):
                found.add(target)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_between_modules():
    modules = _module_names()
    graph = {m: _imports(m, p, set(modules)) for m, p in modules.items()}
    assert _cycles(graph) == []


def test_a_planted_cycle_is_found():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_importing_every_module_loads_no_framework(backend_name):
    """Any portaclass module but the backend adapters (and engines) and the Keras
    subclasses imports without keras, tensorflow, torch or jax; and in a
    user's process (not the console script's) keras then loads whole: its
    scikit-learn wrappers work (the CLI leaves them out, tests/train/test_quiet.py)."""
    names = sorted(m for m in _module_names()
                   if not m.startswith(BACKEND_ADAPTERS) and m not in KERAS_AT_IMPORT
                   and m != "portaclass.__main__")
    result = run_python(
        f"""
        import importlib, json, sys
        for name in {names!r}:
            importlib.import_module(name)
        print(json.dumps([m for m in ("keras", "tensorflow", "torch", "jax") if m in sys.modules]))
        from portaclass import backend
        backend.to_numpy  # keras loads here
        from keras.src.wrappers import sklearn_wrapper
        print(json.dumps(sklearn_wrapper.sklearn is not None))
        """,
        backend_name,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    before_keras, keras_whole = result.stdout.strip().splitlines()[-2:]
    assert json.loads(before_keras) == [] and json.loads(keras_whole)

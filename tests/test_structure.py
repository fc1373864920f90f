"""The library's layering (docs/architecture.md): no import cycle between robustcs modules, counting the
imports inside functions; the settings module a leaf that imports only the standard library; no module over
500 lines."""

import ast
import graphlib
import sys

from conftest import ROOT

LIBRARY = ROOT / "workflow" / "robustcs"
MODULES = {p.stem: p for p in LIBRARY.glob("*.py") if p.stem != "__init__"}


def _imports(path) -> tuple[set[str], set[str]]:
    """(robustcs modules, other top-level packages) that a file imports anywhere (functions included)."""
    own, other = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                (own.add(parts[1]) if parts[0] == "robustcs" and len(parts) > 1 else other.add(parts[0]))
        elif isinstance(node, ast.ImportFrom):
            parts = (node.module or "").split(".")
            if node.level == 1 or parts[0] == "robustcs":
                inner = parts if node.level == 1 else parts[1:]
                if inner and inner[0]:
                    own.add(inner[0])
                else:  # from . import x / from robustcs import x
                    own |= {a.name for a in node.names if a.name in MODULES}
            else:
                other.add(parts[0])
    return own - {path.stem}, other


def test_no_import_cycle_between_library_modules():
    graph = {name: _imports(path)[0] & set(MODULES) for name, path in MODULES.items()}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        raise AssertionError(f"import cycle in workflow/robustcs: {err.args[1]}") from None


def test_specs_is_a_leaf_of_the_standard_library():
    # the start-up checks run where only Snakemake is installed; the registry imports specs, never the reverse
    own, other = _imports(MODULES["specs"])
    assert own <= {"netspecs"}, f"robustcs.specs imports {sorted(own)}"  # its network specs' traits, a leaf too
    assert not _imports(MODULES["netspecs"])[0] and _imports(MODULES["netspecs"])[1] <= {"__future__"}
    assert other <= set(sys.stdlib_module_names) | {"__future__", "pywt"}, sorted(other)
    assert "specs" in _imports(MODULES["families"])[0]


def test_no_library_module_over_500_lines():
    long = {name: n for name, path in MODULES.items() if (n := len(path.read_text().splitlines())) > 500}
    assert not long, f"split these modules: {long}"

"""A user's own reconstruction method, named by a class in a Python file outside the library (docs/own_method.md).

A variant ``{family: external, class: "path/to/file.py:ClassName", maps: true, <its own settings>}`` is parsed
at start-up into an :class:`ExternalSpec` without running the user's code (the start-up checks import only the
standard library): the file must exist and parse, and define the class at its top level with ``forward`` or
``reconstruct`` (in the class or a base class defined in the same file). Whether it can be attacked is read the
same way: it offers ``forward``, ``differentiable`` or its own ``attack``. The file's SHA-256 goes into the
variant's rule params (:meth:`ExternalSpec.stamp`), so that editing the file reruns its jobs; a job refuses a
file that changed after the workflow started (:func:`load_class`).

:func:`load_class` imports the file with importlib (one module per file content) and returns the class; the
Method interface itself is checked where the jobs build it (``robustcs.methods.external_method``).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

#: Keys of an external variant's block that the workflow reads; every other key is passed to the class.
RESERVED = ("family", "class", "maps", "sha256")
#: Methods that make a reconstruction (a Method subclass writes ``forward``; a duck-typed one ``reconstruct``).
RECONSTRUCTS = ("forward", "reconstruct")
#: Methods that make it attackable: a differentiable forward, or its own attack strategy.
ATTACKABLE = ("forward", "differentiable", "attack")


def split_target(target) -> tuple[str, str]:
    """``"path/to/file.py:ClassName"`` -> (path, class name); a ValueError naming the ``class`` key otherwise."""
    if not isinstance(target, str) or target.count(":") < 1:
        raise ValueError(f"class: expected 'path/to/file.py:ClassName', got {target!r}")
    path, _, name = target.rpartition(":")
    if not path or not name.isidentifier():
        raise ValueError(f"class: expected 'path/to/file.py:ClassName', got {target!r}")
    return path, name


def _class_methods(tree: ast.Module, name: str, path: str) -> set[str]:
    """Names of the functions the top-level class ``name`` defines, with those of its bases defined in the same
    file; a ValueError when the file defines no such class."""
    classes = {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}
    if name not in classes:
        raise ValueError(f"class: {path} defines no top-level class {name!r} (it defines {sorted(classes) or 'none'})")
    found, todo, seen = set(), [name], set()
    while todo:
        node = classes[todo.pop()]
        seen.add(node.name)
        found |= {f.name for f in node.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}
        todo += [b.id for b in node.bases if isinstance(b, ast.Name) and b.id in classes and b.id not in seen]
    return found


@dataclass(frozen=True)
class ExternalSpec:
    """An external variant: the file and class, whether it reads ESPIRiT maps, what its class is passed, the
    file's SHA-256 when parsed, and whether it offers a differentiable forward (read from the file's text)."""

    path: str
    name: str
    maps: bool = True
    settings: dict = field(default_factory=dict)
    sha256: str = ""
    attackable: bool = False

    @classmethod
    def from_config(cls, cfg: dict) -> "ExternalSpec":
        """The spec of a variant block; a ValueError naming the key (``class``, ``maps``) and the file otherwise.
        A block carrying ``sha256`` (a job's params) must match the file as it is now."""
        path, name = split_target(cfg.get("class"))
        maps = cfg.get("maps", True)
        if not isinstance(maps, bool):
            raise ValueError(f"maps: expected true or false (whether the class reads ESPIRiT maps), got {maps!r}")
        file = Path(path)
        if not file.is_file():
            raise ValueError(f"class: file {path} does not exist (a path relative to the working directory "
                             f"{Path.cwd()}, or absolute)")
        text = file.read_bytes()
        try:
            tree = ast.parse(text, filename=path)
        except SyntaxError as err:
            raise ValueError(f"class: {path} is not valid Python (line {err.lineno}: {err.msg})") from None
        defined = _class_methods(tree, name, path)
        if not defined & set(RECONSTRUCTS):
            raise ValueError(f"class: {name} in {path} lacks the Method interface: it defines neither forward "
                             "nor reconstruct (docs/own_method.md)")
        sha256 = hashlib.sha256(text).hexdigest()
        if cfg.get("sha256", sha256) != sha256:
            raise ValueError(f"class: {path} changed after the workflow started (SHA-256 {sha256[:12]}..., "
                             f"expected {str(cfg['sha256'])[:12]}...); run the workflow again")
        settings = {k: v for k, v in cfg.items() if k not in RESERVED}
        return cls(path, name, maps, settings, sha256, bool(defined & set(ATTACKABLE)))

    def stamp(self) -> dict:
        """What the variant's rule params add to its settings: the file's hash (editing the file reruns its jobs)."""
        return {"sha256": self.sha256}


def load_class(spec: ExternalSpec) -> type:
    """The class named by ``spec``, its file imported with importlib as a module named after its content hash
    (imported once per process); a ValueError naming the file and class when it does not define it."""
    module_name = f"robustcs_external_{spec.sha256[:16]}"
    module = sys.modules.get(module_name)
    if module is None:
        loader = importlib.util.spec_from_file_location(module_name, Path(spec.path).resolve())
        module = importlib.util.module_from_spec(loader)
        sys.modules[module_name] = module  # dataclasses and pickling look the module up while it runs
        try:
            loader.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
    cls = getattr(module, spec.name, None)
    if not isinstance(cls, type):
        raise ValueError(f"class: {spec.path} defines no class {spec.name!r}")
    return cls

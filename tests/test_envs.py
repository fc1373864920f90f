"""Pinned environments: every rule that runs Python names a conda env from envs/, and every env pins
exactly the versions the Makefile installs (requirements.txt and the --no-deps packages)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

ENVS = sorted((ROOT / "envs").glob("*.yaml"))
# requirements that only run the workflow or the tests, not the rules (so in no rule env)
ORCHESTRATION = {"snakemake", "pygments", "jsonschema"}  # jsonschema: the start-up config checks, in Snakemake's process
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)$")


def _pins(lines) -> dict:
    """{normalised name: version} of 'name==version' lines; anything else but comments is an error."""
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = PIN.match(line)
        assert match, f"not an exact pin: {line!r}"
        out[match.group(1).lower().replace("_", "-")] = match.group(2)
    return out


def _no_deps_pins(text: str) -> dict:
    """Pins of the packages installed with ``pip install --no-deps`` in a Makefile or post-deploy script."""
    out = {}
    for line in text.splitlines():
        if "--no-deps" in line and "pip install" in line:
            out.update(_pins(tok for tok in line.split() if "==" in tok))
    return out


def test_there_are_envs():
    assert {p.name for p in ENVS} >= {"data.yaml", "recon.yaml"}


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_env_pins_agree_with_the_makefile(env):
    spec = yaml.safe_load(env.read_text())
    deps = spec["dependencies"]
    conda = [d for d in deps if isinstance(d, str)]
    python = [d for d in conda if d.startswith("python=")]
    assert python == [f"python={sys.version_info.major}.{sys.version_info.minor}"], python
    for dep in conda:  # conda packages pinned to a version too
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+=[0-9][A-Za-z0-9_.]*", dep), f"{env.name}: unpinned conda dependency {dep!r}"
    pip = _pins(next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d))
    required = _pins((ROOT / "requirements.txt").read_text().splitlines())
    for name, version in pip.items():
        assert required.get(name) == version, f"{env.name}: {name}=={version} but requirements.txt pins {required.get(name)}"
    # the env has everything the workflow's scripts import (only the test and orchestration tools are left out)
    missing = set(required) - set(pip) - ORCHESTRATION
    if env.name == "data.yaml":
        missing -= {"ptwt"}  # the ℓ1 wavelets run in the recon rules only
    assert not missing, f"{env.name} lacks {sorted(missing)}"
    # fastmri / nilearn: the post-deploy script installs the Makefile's versions
    script = env.with_name(env.stem + ".post-deploy.sh")
    assert script.is_file(), f"{script.name} missing"
    assert _no_deps_pins(script.read_text()) == _no_deps_pins((ROOT / "Makefile").read_text()) != {}


def test_every_python_rule_names_an_existing_env():
    rules = 0
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        blocks = re.split(r"^(?=(?:rule|checkpoint) \w+:)", smk.read_text(), flags=re.M)
        for block in blocks:
            head = re.match(r"(?:rule|checkpoint) (\w+):", block)
            if not head or not re.search(r"^\s+(script|run|shell):", block, flags=re.M):
                continue
            rules += 1
            env = re.search(r"^\s+conda:\s*\n\s+\"([^\"]+)\"", block, flags=re.M)
            assert env, f"{smk.name}: rule {head.group(1)} names no conda env"
            assert (smk.parent / env.group(1)).resolve().is_file(), f"{smk.name}: rule {head.group(1)}: {env.group(1)}"
    assert rules >= 15


def _dependency_closure(dist: str) -> set[str]:
    """Normalised names of a distribution and everything it requires (without extras), as installed."""
    from importlib import metadata

    seen, todo = set(), [dist]
    while todo:
        name = re.split(r"[\s;<>=!~\[(]", todo.pop(), maxsplit=1)[0].lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [r for r in requires if "extra ==" not in r]
    return seen


def snakemake_only_env(folder: Path) -> dict:
    """Environment variables under which Python cannot import any package of requirements.txt that Snakemake
    does not itself pull in (NumPy and pandas included; the cluster plugins are also hidden from Snakemake's
    plugin search): the machine that runs Snakemake under --sdm conda. A sitecustomize module in ``folder``."""
    from importlib import metadata

    requirements = [line for name in ("requirements.txt", "requirements-cluster.txt")
                    for line in (ROOT / name).read_text().splitlines()]
    workflow_only = set(_pins(requirements)) - _dependency_closure("snakemake")
    assert {"torch", "matplotlib", "sigpy", "h5py", "numpy", "pandas"} <= workflow_only
    modules = {top for top, dists in metadata.packages_distributions().items()
               if any(d.lower().replace("_", "-") in workflow_only for d in dists)}
    assert {"torch", "matplotlib", "sigpy", "h5py", "pywt", "numpy"} <= modules
    folder.mkdir(parents=True, exist_ok=True)
    # the path finder stops seeing these packages: import fails and importlib.util.find_spec answers None, as
    # where they are not installed (Snakemake itself asks find_spec whether pandas is there)
    (folder / "sitecustomize.py").write_text(
        "import importlib.machinery, pkgutil, sys\n"
        f"BLOCKED = {sorted(modules)!r}\n"
        "class Hidden(importlib.machinery.PathFinder):\n"
        "    @classmethod\n"
        "    def find_spec(cls, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            return None\n"
        "        return super().find_spec(name, path, target)\n"
        "sys.meta_path[:] = [Hidden if f is importlib.machinery.PathFinder else f for f in sys.meta_path]\n"
        "_iter_modules = pkgutil.iter_modules\n"
        "pkgutil.iter_modules = lambda *a, **k: (m for m in _iter_modules(*a, **k) if m.name not in BLOCKED)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")])}
    for module in ("torch", "numpy", "pandas"):  # the packages are really gone for this Python
        probe = subprocess.run([sys.executable, "-c", f"import importlib.util; assert importlib.util.find_spec("
                                f"{module!r}) is None; import {module}"], env=env, capture_output=True, text=True)
        assert probe.returncode != 0 and f"No module named '{module}'" in probe.stderr, probe.stderr
    return env


def test_parsing_the_workflow_needs_only_snakemake(tmp_path):
    """With --sdm conda the rule envs carry the science stack: the workflow parses, runs every start-up check
    and schedules the tiny study where only Snakemake is installed (with results: tests/test_workflow.py)."""
    from conftest import TINY_CONFIG, snakemake

    proc = snakemake("-n", "--cores", "1", "--configfile", str(TINY_CONFIG), "--directory", str(tmp_path / "run"),
                     env=snakemake_only_env(tmp_path / "block"), check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "ingest" in proc.stdout


def test_requirement_files_split_by_purpose():
    """requirements.txt runs the workflow; the test runner and the cluster plugins live in their own files, which
    pin the same way and add nothing that requirements.txt already pins."""
    workflow = _pins((ROOT / "requirements.txt").read_text().splitlines())
    assert "snakemake" in workflow and "torch" in workflow
    assert not {"pytest", "snakemake-executor-plugin-slurm"} & set(workflow)
    test_lines = (ROOT / "requirements-test.txt").read_text().splitlines()
    assert {"-r requirements.txt", "-r requirements-cluster.txt"} <= {line.strip() for line in test_lines}
    tests = _pins(line for line in test_lines if not line.startswith("-r"))
    cluster = _pins((ROOT / "requirements-cluster.txt").read_text().splitlines())
    assert "pytest" in tests and "snakemake-executor-plugin-slurm" in cluster
    assert not (set(tests) | set(cluster)) & set(workflow)
    assert "requirements-test.txt" in (ROOT / "Makefile").read_text()


def test_pyproject_declares_what_the_library_imports():
    import ast
    import tomllib
    from importlib import metadata

    imported = set()
    for path in (ROOT / "workflow" / "robustcs").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    imported -= set(sys.stdlib_module_names) | {"robustcs"}
    declared = {d.lower().replace("_", "-") for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    providers = metadata.packages_distributions()
    missing = {m for m in imported if not {d.lower().replace("_", "-") for d in providers.get(m, [m])} & declared}
    assert not missing, f"imported by workflow/robustcs but not in pyproject.toml's dependencies: {sorted(missing)}"
    pinned = _pins((ROOT / "requirements.txt").read_text().splitlines()) | _no_deps_pins((ROOT / "Makefile").read_text())
    assert declared <= set(pinned), f"declared but pinned nowhere: {sorted(declared - set(pinned))}"

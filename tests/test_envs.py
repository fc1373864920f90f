"""Pinned environments: every rule that runs Python names a conda env from envs/, and every env pins
exactly the versions the Makefile installs (requirements.txt and the --no-deps packages)."""

import re
import sys

import pytest
import yaml

from conftest import ROOT

ENVS = sorted((ROOT / "envs").glob("*.yaml"))
# requirements that only run the workflow or the tests, not the rules (so in no rule env)
ORCHESTRATION = {"snakemake", "pytest", "pygments", "snakemake-executor-plugin-slurm", "snakemake-executor-plugin-slurm-jobstep"}
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

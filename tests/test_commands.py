"""Every `snakemake` command the README, docs and config/profile headers show works as pasted: each is run
as a dry run (`-n`, in an empty working directory) exactly as written, so a command that Snakemake cannot
parse (e.g. a target swallowed by `--configfile`) fails here."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

SOURCES = ["README.md", "docs/methods.md", "config/README.md", "config/config.yaml", "config/demo_full.yaml",
           "config/real.yaml", "profiles/local/config.yaml", "profiles/slurm/config.yaml", "profiles/default/config.yaml"]


def documented_commands() -> list[tuple[str, str]]:
    """(source, command) for every `snakemake ...` in an indented code line or between backticks."""
    found = []
    for name in SOURCES:
        text = (ROOT / name).read_text()
        candidates = re.findall(r"^ {4}(snakemake [^#\n]*)", text, re.M) + re.findall(r"`(snakemake [^`]*)`", text)
        for cmd in candidates:
            cmd = cmd.strip()
            if cmd not in (c for _, c in found):
                found.append((name, cmd))
    return found


COMMANDS = documented_commands()


def test_commands_are_found():
    names = {c for _, c in COMMANDS}
    assert "snakemake --cores 8 --configfile config/real.yaml -- all" in names
    assert any("--profile profiles/slurm" in c for c in names) and len(names) >= 8


@pytest.mark.parametrize("source, command", COMMANDS, ids=[c for _, c in COMMANDS])
def test_documented_command_dry_runs(source, command, tmp_path):
    args = shlex.split(command)[1:]
    if "--report" in args:
        pytest.skip("builds a report from finished results (tests/test_report.py)")
    exe = Path(sys.executable).with_name("snakemake")
    # the command as pasted (relative config and profile paths resolve from the checkout), results in tmp_path
    cmd = [str(exe), "-n", "--directory", str(tmp_path), *args]  # before any "--" that ends the config files
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert "FileNotFoundError" not in out and "No rule to produce" not in out, f"{source}: `{command}`:\n{out[-3000:]}"
    # the workflow profile (its job-rate setting keeps Snakemake's scheduler from taking a core) is read by every one
    assert "workflow specific profile profiles/default" in out, f"{source}: `{command}`:\n{out[-3000:]}"
    if "config/real.yaml" in args:
        # parsed, config read and checked: the start-up check stops at the first data folder still to be filled in
        assert proc.returncode != 0 and re.search(r"config datasets\.\w+\.splits\.\w+\.path: folder '/data/", out), out[-3000:]
        return
    assert proc.returncode == 0, f"{source}: `{command}` fails as pasted:\n{out[-3000:]}"


def test_real_study_config_passes_every_start_up_check(tmp_path):
    """config/real.yaml with its data folders pointed at empty folders: schema, method specs, shifts, TTT plan and
    attack/feature blocks all pass the start-up checks, and the dry run schedules the ingest of every dataset."""
    import yaml

    cfg = yaml.safe_load((ROOT / "config" / "real.yaml").read_text())
    for name, ds in cfg["datasets"].items():
        for split, source in ds["splits"].items():
            folder = tmp_path / "data" / name / split
            folder.mkdir(parents=True)
            source["path"] = str(folder)
    boxes = tmp_path / "data" / "boxes.csv"  # the annotation file, in the fastMRI+ layout
    boxes.write_text("file,slice,study_level,x,y,width,height,label\nfile1000001.h5,15,No,150,140,14,8,Meniscus Tear\n")
    cfg["pathology"]["annotations"] = str(boxes)
    pretrained = [m for m, spec in cfg["methods"].items() if "checkpoint" in spec]
    for name in pretrained:  # the published files' checksums are the user's to fill in, too
        assert "sha256" not in cfg["methods"][name]["checkpoint"]
        cfg["methods"][name]["checkpoint"]["sha256"] = "0" * 64
    path = tmp_path / "real.yaml"
    path.write_text(yaml.safe_dump(cfg))
    exe = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run([str(exe), "-n", "--quiet", "rules", "--cores", "8", "--configfile", str(path), "--directory",
                           str(tmp_path / "work"), "--", "all"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert re.search(rf"^ingest\s+{len(cfg['datasets'])}$", out, re.M), out[-2000:]
    assert len(pretrained) == 2  # fastMRI's knee U-Net and VarNet (their jobs: tests/test_pretrained.py)
    groups = {}
    for spec in cfg["methods"].values():
        groups[spec["family"]] = groups.get(spec["family"], 0) + 1
    assert all(groups[f] >= 3 for f in ("l1", "convdecoder", "unet", "varnet")), groups
    assert cfg["compute"]["gpus"] == 1 and max(cfg["attacks"]["epsilons"]) == 0.08

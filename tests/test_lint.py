"""Snakemake's linter passes on the workflow and every rule file keeps snakefmt's format (CI runs both via make
test; the files are the Makefile's SNAKEFMT_FILES, `make format` rewrites them)."""

import re
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, TINY_CONFIG as TINY, snakemake


def test_snakemake_lint_is_clean(tmp_path):
    for args in ((), ("--configfile", str(TINY))):
        proc = snakemake("--lint", "--directory", str(tmp_path), *args, check=False)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0 and "Lints for" not in out, out[-3000:]


def formatted_files() -> list[Path]:
    text = (ROOT / "Makefile").read_text()
    names = re.search(r"^SNAKEFMT_FILES := (.*)$", text, re.M).group(1).split()
    files = [p for name in names for p in sorted(ROOT.glob(name))]
    assert files and all(p.is_file() for p in files)
    return files


def test_snakefmt_check():
    exe = Path(sys.executable).with_name("snakefmt")
    proc = subprocess.run([str(exe), "--check", *map(str, formatted_files())], cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode == 0, f"run `make format`:\n{proc.stdout}{proc.stderr}"[-3000:]


def test_no_rule_file_mixes_functions_and_rules():
    """The lint's own rule, stated here so that a new rule file fails locally too: functions go to rules/inputs/."""
    for smk in [ROOT / "Snakefile", *sorted((ROOT / "workflow/rules").rglob("*.smk"))]:
        text = smk.read_text()
        assert not (re.search("rule .+?:", text) and re.search("def .+?:", text)), smk

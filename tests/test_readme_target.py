"""The `readme` target writes outside results/ only for the demo run in the checkout, only when asked by name,
and says what it changed; any other run gets its README block in results/readme/ (tables made up here: the
target only copies them)."""

import shutil

import pytest

from conftest import ROOT, TINY_CONFIG as TINY, snakemake
from robustcs import readme
from test_workflow import job_counts


def _results(work):
    (work / "results/tables").mkdir(parents=True)
    (work / "results/figures").mkdir(parents=True)
    (work / "results/tables/headline.md").write_text("| variant | ssim |\n")
    (work / "results/tables/findings.md").write_text("| finding | reproduces |\n")
    (work / "results/figures/shifts.png").write_bytes(b"\x89PNG fit")


def _readme(work, *args, check=True):
    # only the readme rule may run: its inputs are the made-up tables, not a study's jobs
    return snakemake("readme", "--cores", "1", "--directory", str(work), "--allowed-rules", "readme", *args,
                     cwd=work, check=check)


@pytest.mark.slow
def test_other_configs_write_to_results_only(tmp_path):
    _results(tmp_path)
    marked = "# Mine\n<!-- headline:begin -->\nold\n<!-- headline:end -->\n"
    (tmp_path / "README.md").write_text(marked)
    proc = _readme(tmp_path, "--configfile", str(TINY))
    assert (tmp_path / "README.md").read_text() == marked  # untouched
    block = (tmp_path / "results/readme/README.md").read_text()
    assert "| variant | ssim |" in block and "](shifts.png)" in block
    assert (tmp_path / "results/readme/shifts.png").read_bytes() == b"\x89PNG fit"
    assert "readme: changed" in proc.stderr and "results/readme/README.md" in proc.stderr
    assert not (tmp_path / "docs").exists()


def test_readme_is_not_part_of_all(tmp_path):
    """(That no job of `all` writes outside results/ is checked on the full tiny DAG in tests/test_plan.py.)"""
    proc = snakemake("-n", "--cores", "1", "--directory", str(tmp_path), "--configfile", str(TINY), "--quiet",
                     "rules")
    counts = job_counts(proc)
    assert "all" in counts and "readme" not in counts
    proc = snakemake("--list-rules", "--directory", str(tmp_path), "--configfile", str(TINY))
    assert "readme" in proc.stdout  # the target exists, but only by name


@pytest.fixture
def checkout(tmp_path):
    """A copy of the workflow's files, so that the demo-in-the-checkout case can write its README and docs/."""
    work = tmp_path / "checkout"
    for name in ("workflow", "config", "profiles", "envs"):
        shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "Snakefile", work / "Snakefile")
    _results(work)
    return work


@pytest.mark.long  # Snakemake runs in a copied checkout (~35 s): make test-long
def test_demo_in_checkout_updates_readme_and_says_so(checkout):
    exe = [f"--snakefile={checkout / 'Snakefile'}"]
    (checkout / "README.md").write_text("# Study\n\nno markers here\n")
    proc = snakemake("readme", "--cores", "1", "--allowed-rules", "readme", *exe, cwd=checkout, check=False)
    assert proc.returncode != 0 and "headline:begin" in proc.stdout + proc.stderr
    assert (checkout / "README.md").read_text() == "# Study\n\nno markers here\n"
    (checkout / "README.md").write_text("# Study\n<!-- headline:begin -->\nold\n<!-- headline:end -->\nafter\n")
    proc = snakemake("readme", "--cores", "1", "--allowed-rules", "readme", *exe, cwd=checkout)
    text = (checkout / "README.md").read_text()
    assert text.startswith("# Study\n<!-- headline:begin -->\n") and text.endswith("<!-- headline:end -->\nafter\n")
    assert "| variant | ssim |" in text and "old" not in text and "](docs/demo/shifts.png)" in text
    assert (checkout / "docs/demo/shifts.png").read_bytes() == b"\x89PNG fit"
    assert "readme: changed" in proc.stderr and "README.md" in proc.stderr.split("readme: changed", 1)[1]
    # the same demo with --config is not the demo: its block goes to results/readme/
    before = (checkout / "README.md").read_text()
    snakemake("readme", "--cores", "1", "--allowed-rules", "readme", *exe, "--config", "seed=5", cwd=checkout)
    assert (checkout / "README.md").read_text() == before and (checkout / "results/readme/README.md").is_file()


def test_update_lists_only_changed_files(tmp_path):
    _results(tmp_path)
    res = tmp_path / "results"
    out = {k: tmp_path / "o" / f for k, f in (("table", "h.md"), ("findings", "f.md"), ("figure", "s.png"))}
    (tmp_path / "o").mkdir()
    args = (res / "tables/headline.md", res / "tables/findings.md", res / "figures/shifts.png", out)
    with pytest.raises(FileNotFoundError, match="no README"):
        readme.update(*args, tmp_path / "R.md")
    first = readme.update(*args, tmp_path / "R.md", create=True)
    assert sorted(first) == sorted(map(str, [*out.values(), tmp_path / "R.md"]))
    assert readme.update(*args, tmp_path / "R.md") == []  # nothing changed, nothing listed

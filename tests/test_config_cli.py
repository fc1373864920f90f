"""Config on the command line as config/README.md documents it: `--config key=value` overrides keys of the config in
use (the default demo, or the --configfile given), nested blocks key by key; a --configfile replaces the default;
every config file given is read strictly (a key written twice is refused); errors start with one summary line."""

import re

import pytest
import yaml

from conftest import ROOT, TINY_CONFIG as TINY, snakemake


def _dry(tmp_path, *args, check=True):
    """A dry run in an empty working directory; returns (returncode, stdout + stderr)."""
    proc = snakemake("-n", "--cores", "1", "--directory", str(tmp_path), *args, check=check)
    return proc.returncode, proc.stdout + proc.stderr


def _resources(out: str, rule: str) -> list[str]:
    """The `resources:` lines of a rule's jobs in a (non-quiet) dry run's listing."""
    blocks = re.split(r"\n(?=(?:rule|checkpoint|localrule|localcheckpoint) \w+:)", out)
    return [re.search(r"resources: (.*)", b).group(1) for b in blocks
            if re.match(rf"(?:local)?(?:rule|checkpoint) {rule}:", b.strip()) and "resources:" in b]


def test_config_key_overrides_the_default(tmp_path):
    rc, out = _dry(tmp_path, "--config", "seed=1", "--quiet", "rules")
    assert rc == 0 and "is a required property" not in out
    # the override reaches the study model: an invalid seed is refused, naming the field
    rc, out = _dry(tmp_path, "--config", "seed=-1", check=False)
    assert rc != 0 and "config seed: got -1; expected integer >= 0" in out


def test_nested_config_merges_key_by_key(tmp_path):
    """`--config "compute={...}"` changes the keys given and keeps the block's others (Snakemake's merge);
    nested scalars arrive typed (Snakemake's parser leaves them strings)."""
    rc, out = _dry(tmp_path, "--config", "compute={'runtime': {'ingest': 77}}")
    assert rc == 0, out[-2000:]
    ingest = _resources(out, "ingest")
    assert ingest and all("runtime=77" in r for r in ingest)
    # the demo's compute.threads (1) is kept: ingest asks 4000 MB per thread (the schema's default, 2, gives 8000)
    assert all("mem_mb=4000," in r for r in ingest)
    masks = _resources(out, "masks")  # a key not given keeps its default
    assert masks and all(r.endswith("runtime=10") for r in masks)


def test_configfile_replaces_the_default_and_config_overrides_it(tmp_path):
    rc, out = _dry(tmp_path, "--configfile", str(TINY), "--config", "seed=2", "--quiet", "rules")
    assert rc == 0, out[-2000:]
    # only the tiny config's two datasets are ingested (the demo's four would be merged in by plain Snakemake)
    assert re.search(r"^ingest\s+2$", out, re.M), out[-2000:]
    rc, out = _dry(tmp_path, "--configfile", str(TINY), "--config", "seed=x", check=False)
    assert rc != 0 and "config seed: got 'x'; expected integer" in out


def test_duplicate_variant_key_is_refused(tmp_path):
    text = TINY.read_text().replace("  cg_a: {family: cgsense", "  zf: {family: l1, lam: 0.01}\n  cg_a: {family: cgsense")
    cfg = tmp_path / "dup.yaml"
    cfg.write_text(text)
    line = text.splitlines().index("  zf: {family: l1, lam: 0.01}") + 1
    rc, out = _dry(tmp_path, "--configfile", str(cfg), check=False)
    assert rc != 0
    assert f"config file {cfg}, line {line}: key 'zf' is given twice" in out
    assert not (tmp_path / "results").exists()


def test_misspelt_block_gets_one_line_with_a_suggestion(tmp_path):
    rc, out = _dry(tmp_path, "--config", "sensitivities={'esprit': {'max_iter': 3}}", check=False)
    assert rc != 0
    first = next(line for line in out.splitlines() if line.startswith("config "))
    assert first.startswith("config sensitivities.esprit: unknown key (did you mean 'espirit'?)")
    assert len(out.splitlines()) < 15  # no dump of the schema


def test_real_config_lists_every_missing_folder(tmp_path):
    cfg = yaml.safe_load((ROOT / "config" / "real.yaml").read_text())
    folders = {s["path"] for d in cfg["datasets"].values() for s in d.get("splits", {}).values() if "path" in s}
    rc, out = _dry(tmp_path, "--configfile", str(ROOT / "config" / "real.yaml"), check=False)
    assert rc != 0 and len(folders) > 1
    assert f"{len(folders)} data folder(s) missing in all" in out
    for folder in folders:
        assert f"  folder {folder!r} (datasets." in out

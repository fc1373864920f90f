"""The experiment registry (robustcs.experiments): each entry's rule file is included and writes the tables and
figures the entry names, the cross-experiment rules name no experiment, rules take every path from
robustcs.paths, and the result-file writer/reader pairs (robustcs.result_files) round-trip."""

import io
import re
import tokenize
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import yaml

from robustcs import experiments, paths
from robustcs.fastmri_io import DataValidationError
from robustcs.result_files import FeaturedGroup, read_attack, read_featured, write_attack, write_featured
from robustcs.study import Study

from conftest import ROOT, TINY_CONFIG

RULES = ROOT / "workflow" / "rules"
RULE_FILES = sorted([*RULES.glob("*.smk"), *RULES.glob("inputs/*.smk"), ROOT / "Snakefile"])


def _rule_outputs(smk: str) -> str:
    """The output sections of every rule of a rule file, joined."""
    text = (RULES / smk).read_text()
    bodies = re.findall(r"^(?:rule|checkpoint) \w+:\n(.*?)(?=^\S|\Z)", text, re.S | re.M)
    return "\n".join(re.split(r"^    \w+:", body.split("    output:", 1)[1], flags=re.M)[0]
                     for body in bodies if "    output:" in body)


def _strings(path) -> list[str]:
    """The string literals of a rule file (Snakemake's syntax tokenizes as Python; comments are left out)."""
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    return [t.string for t in tokens if t.type == tokenize.STRING]


def test_every_entry_has_its_rule_file_included_and_its_input_functions():
    snakefile = (ROOT / "Snakefile").read_text()
    names = [e.name for e in experiments.REGISTRY]
    assert len(names) == len(set(names)), names
    for e in experiments.REGISTRY:
        assert (RULES / e.rule_file).is_file(), e
        assert f'include: "workflow/rules/{e.rule_file}"' in snakefile, f"{e.name}: Snakefile does not include it"
        if e.intermediates:  # the function lives in the rule file's own inputs file
            inputs = (RULES / "inputs" / e.rule_file).read_text()
            assert re.search(rf"^def {e.intermediates}\(wildcards\):", inputs, re.M), e.name


def test_every_table_and_figure_of_an_entry_is_written_by_a_rule_of_its_file():
    for e in experiments.REGISTRY:
        outputs = _rule_outputs(e.rule_file)
        written = set(re.findall(r'paths\.table\("([^"]+)"\)', outputs))
        assert set(e.tables) <= written, f"{e.name}: {sorted(set(e.tables) - written)} not written by {e.rule_file}"
        assert set(e.targets) <= set(e.tables), e.name
        read = {*e.headline.values(), *e.findings.values(), *e.optional_findings.values()}
        assert read <= set(e.tables), f"{e.name}: reads tables it does not write: {sorted(read - set(e.tables))}"
        for figure in e.figures:
            for ext in ("png", "pdf"):
                assert f'paths.figure("{figure}", "{ext}")' in outputs, f"{e.name}: {figure}.{ext}"


def test_the_summary_scripts_read_every_input_the_registry_gives_them():
    scripts = ROOT / "workflow" / "scripts"
    for which, script in (("headline", "summarise_headline.py"), ("findings", "summarise_findings.py")):
        text = (scripts / script).read_text()
        keys = {k for e in experiments.REGISTRY
                for k in [*getattr(e, which), *(e.optional_findings if which == "findings" else [])]}
        for key in keys - {"clean"}:  # read by name (inp.clean) in both
            assert f'"{key}"' in text, f"{script} never reads input {key!r} the registry passes"


def test_the_architecture_doc_gives_the_recipe_this_file_checks():
    recipe = (ROOT / "docs" / "architecture.md").read_text().split("**Adding an experiment**", 1)[1]
    for words in ("experiments.REGISTRY", "workflow/rules/<name>.smk", "_intermediates", "tests/test_experiments.py"):
        assert words in recipe.split("## ", 1)[0], words


def test_the_cross_experiment_rules_name_no_experiment():
    names = {e.name for e in experiments.REGISTRY}
    tables = {t for e in experiments.REGISTRY for t in e.tables}
    for smk in (RULES / "report.smk", RULES / "inputs" / "report.smk"):
        for literal in _strings(smk):
            value = literal.strip("\"'")
            assert value not in names, f"{smk.name} names experiment {value}"
            assert value not in tables, f"{smk.name} names table {value} of an experiment"
        assert "example_case(" not in smk.read_text(), smk.name


def test_no_rule_file_holds_a_literal_result_path():
    for path in RULE_FILES:
        found = [s for s in _strings(path) if "results/" in s]
        assert not found, f"{path.relative_to(ROOT)}: literal result paths {found[:3]}: use robustcs.paths"


@pytest.fixture(scope="module")
def tiny():
    return yaml.safe_load(TINY_CONFIG.read_text())


def test_the_targets_and_summary_inputs_follow_the_configured_blocks(tiny):
    study = Study.from_config(tiny)
    found = {e.name for e in experiments.configured(study)}
    assert {"clean", "attacks", "features", "ttt"} <= found
    findings = experiments.summary_inputs(study, "findings")
    assert findings["drops"] == paths.table("adversarial_drops.csv") and "attacks" in findings
    assert paths.table("adversarial.csv") in experiments.table_targets(study)
    assert paths.figure("adversarial", "pdf") in experiments.figure_targets(study)
    without = dict(tiny)
    del without["attacks"]
    study = Study.from_config(without)
    assert "attacks" not in {e.name for e in experiments.configured(study)}
    assert not {"drops", "attacks", "effort"} & set(experiments.summary_inputs(study, "findings"))
    assert "adversarial" not in experiments.summary_inputs(study, "headline")
    assert not [p for p in experiments.figure_targets(study) if "adversarial" in p]
    no_variants = SimpleNamespace(methods={})  # a data-preparation study: no tables, no figures
    assert experiments.table_targets(no_variants) == experiments.figure_targets(no_variants) == []
    with pytest.raises(ValueError, match="headline"):
        experiments.summary_inputs(study, "tables")


def test_the_attack_effort_table_is_read_only_when_the_reruns_are_configured():
    demo = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    study = Study.from_config(demo)
    assert bool(study.attack_effort_settings()) == ("effort" in experiments.summary_inputs(study, "findings"))


def test_paths_of_logs_and_benchmarks():
    assert paths.log("summarise_clean") == "results/logs/summarise_clean.log"
    assert paths.log("attack", "{dataset}/{part}") == "results/logs/attack/{dataset}/{part}.log"
    assert paths.benchmark("plot", "shifts") == f"{paths.BENCHMARKS}/plot/shifts.tsv"
    assert paths.benchmark("readme") == "results/benchmarks/readme.tsv"


def _attacked(seed: int, epsilons: int = 2, shape=(3, 4)):
    rng = np.random.default_rng(seed)
    return SimpleNamespace(clean=rng.random(shape), adversarial=[rng.random(shape) for _ in range(epsilons)],
                           random=[rng.random(shape) for _ in range(epsilons)], budgets=[1.0, 2.0],
                           norms=[0.5, 1.5], losses=[[0.0, 1.0, 2.0]] * epsilons,
                           perturbations=[rng.random((2, 5)) for _ in range(epsilons)])


@pytest.mark.parametrize("save", [False, True])
def test_an_attack_group_round_trips_in_the_layout_readers_expect(tmp_path, save):
    results = [_attacked(1), _attacked(2)]
    with h5py.File(tmp_path / "a.h5", "w") as f:
        write_attack(f.create_group("vol"), [0.01, 0.02], [7, 8], results, save)
    with h5py.File(tmp_path / "a.h5", "r") as f:
        keys = list(f["vol"].keys())
        found = read_attack(f, "vol", "a.h5")
        with pytest.raises(DataValidationError, match="other"):
            read_attack(f, "other", "a.h5")
    assert sorted(keys) == sorted(["epsilons", "slices", "clean", "adversarial", "random", "budgets", "norms",
                                   "losses", *(["perturbation"] if save else [])])
    assert found.slices.tolist() == [7, 8] and found.epsilons.tolist() == [0.01, 0.02]
    assert found.adversarial.shape == (2, 2, 3, 4) and found.losses.shape == (2, 2, 3)
    np.testing.assert_array_equal(found.adversarial[1, 0], results[0].adversarial[1])  # [ε, slice]
    np.testing.assert_array_equal(found.norms[:, 1], results[1].norms)
    assert (found.perturbation is not None) == save


def test_a_featured_group_round_trips_and_a_foreign_file_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    placed = [[{"row": 1, "col": 2}], [{"row": 3, "col": 4}]]
    group = FeaturedGroup(slices=[4, 5], kspace=rng.random((2, 2, 3, 3)) + 1j, target=rng.random((2, 3, 3)),
                          original=rng.random((2, 3, 3)), features=placed)
    with h5py.File(tmp_path / "f.h5", "w") as f:
        write_featured(f.create_group("vol"), group)
        f.create_group("other").create_dataset("slices", data=[1])
    with h5py.File(tmp_path / "f.h5", "r") as f:
        found = read_featured(f, "vol", "f.h5")
        light = read_featured(f, "vol", "f.h5", kspace=False)
        with pytest.raises(DataValidationError, match="kspace"):
            read_featured(f, "other", "f.h5")
    assert found.slices.tolist() == [4, 5] and found.features == placed and light.kspace is None
    np.testing.assert_allclose(found.target, group.target.astype(np.float32))
    assert found.kspace.dtype == np.complex64


def test_the_summarising_and_plotting_rules_run_beside_snakemake_on_a_cluster():
    """`localrule: True` in each rule's own file (an experiment's rules stay in its file): summaries and figures
    only read tables and a few result files; download needs the internet of the login node."""
    local, other = set(), set()
    for path in [*RULES.glob("*.smk"), ROOT / "Snakefile"]:
        for rule, body in re.findall(r"^(?:rule|checkpoint) (\w+):\n(.*?)(?=^\S|\Z)", path.read_text(), re.S | re.M):
            (local if re.search(r"^    localrule: True", body, re.M) else other).add(rule)
    wanted = {r for r in local | other if r.startswith(("summarise_", "plot_"))} | {"all", "download", "readme", "plan"}
    assert local == wanted, (sorted(wanted - local), sorted(local - wanted))
    assert {"attack", "reconstruct", "train", "ttt", "probe_features"} <= other

"""The study model (robustcs.study) and the family registry (robustcs.families): every start-up check runs
in-process here, in milliseconds; tests/test_workflow.py checks that Snakemake runs them before any job."""

import copy

import pytest
import yaml

from robustcs import families
from robustcs.methods import Method, load_method
from robustcs.specs import TTTSpec
from robustcs.study import Study, check_colormaps

from conftest import ROOT, TINY_CONFIG as TINY


@pytest.fixture(scope="module")
def tiny():
    return yaml.safe_load(TINY.read_text())


@pytest.mark.parametrize(
    "mutate,words",
    [
        (lambda c: c["methods"].update(cg_a={"family": "cgsense", "lamda": 0.1}), "methods.cg_a"),
        (lambda c: c.update(tuning={"families": ["l2"]}), "tuning.families: 'l2' is not a family"),
        (lambda c: c.update(tuning={"dataset": "missing_ds"}), "tuning.dataset: 'missing_ds'"),
        (lambda c: c.update(tuning={"mask": "radial8x"}), "tuning.mask: 'radial8x'"),
        (lambda c: c["ttt"].update(lr={"varnet": -1}), "lr"),
        (lambda c: c["ttt"].update(lr={"convdecoder": 1e-3}), "ttt.lr"),
        # the tiny 4x mask samples only its centre: no points outside it to hold out
        (lambda c: c["ttt"].update(holdout_center=True), "ttt.holdout_center: shift 'shift_a'"),
        (lambda c: c["ttt"].update(ablation_hidden=True, hide_holdout=True), "ttt.ablation_hidden"),
        (lambda c: c["methods"]["unet_c"].update(max_train_slices=0), "max_train_slices"),
        (lambda c: c["methods"]["unet_c"].update(max_train_slices=4, train_fraction=0.5), "max_train_slices: set either"),
        (lambda c: c["methods"]["varnet_a"].update(max_val_slices="all"), "max_val_slices"),
        (lambda c: c["masks"]["random4x"].update(type="radial"), "radial"),
        (lambda c: c["masks"]["random4x"].update(acceleration=1), "acceleration"),
        (lambda c: c["masks"]["random4x"].update(center_fraction=1.5), "center_fraction"),
        (lambda c: c["datasets"].update({"../escape": c["datasets"]["tiny_src"]}), "../escape"),
        (lambda c: c["methods"].update({"../../escape": {"family": "zero_filled"}}), "../../escape"),
        (lambda c: c["masks"].update({"/abs": c["masks"]["random4x"]}), "/abs"),
        # held in memory at once: 1e12 draws failed with a MemoryError in the last job, after every reconstruction
        (lambda c: c["shifts"].update(bootstrap=10**12), "bootstrap"),
        # a word ending in '_' is a reStructuredText link: the report would show an error box
        (lambda c: c["datasets"].update({"knee_": c["datasets"]["tiny_src"]}), "knee_"),
        (lambda c: c["shifts"]["pairs"].update({"../up": c["shifts"]["pairs"]["shift_a"]}), "../up"),
        (lambda c: c["datasets"].update(real={"kind": "fastmri", "splits": {"test": {"path": "/nonexistent/folder"}}}),
         "datasets.real.splits.test.path"),
        (lambda c: c["datasets"].update(real={"kind": "fastmri", "splits": {"test": {"archives": [
            {"url": "https://example.org/a.tar", "sha256": "abc"}]}}}), "sha256"),
        (lambda c: c["datasets"]["tiny_src"]["demo"].update(size=47), "size"),
        (lambda c: c["methods"].update(bad={"family": "l2"}), "l2"),
        (lambda c: c["methods"]["l1_a"].update(lamda=0.1), "methods.l1_a"),
        (lambda c: c["methods"]["cd_a"].update(mode="pixels"), "mode"),
        (lambda c: c["methods"]["unet_a"].update(loss="l2"), "loss"),
        (lambda c: c["methods"]["varnet_a"].update(train_on="nowhere"), "nowhere"),
        (lambda c: c["methods"]["l1_a"].update(train_on="tiny_src"), "train_on"),
        (lambda c: c["evaluation"].update(datasets=["missing_ds"]), "missing_ds"),
        (lambda c: c["training"].update(mask="missing_mask"), "missing_mask"),
        (lambda c: c["attacks"].update(epsilons=[0.01, -0.02]), "epsilons"),
        (lambda c: c["attacks"].update(reference="image"), "reference"),
        (lambda c: c["attacks"].update(methods=["no_such_variant"]), "no_such_variant"),
        (lambda c: c["attacks"].update(datasets=["missing_ds"]), "missing_ds"),
        (lambda c: c["features"].update(shapes=["star"]), "star"),
        (lambda c: c["features"].update(sizes=[0]), "sizes"),
        (lambda c: c["shifts"]["pairs"]["shift_a"].update(target="missing_ds"), "missing_ds"),
        (lambda c: c["shifts"]["pairs"]["shift_a"].update(kind="weather"), "weather"),
        (lambda c: c["shifts"]["pairs"]["shift_a"].update(source="tiny_shift", target="tiny_src"), "learns from"),
        (lambda c: c["shifts"]["pairs"]["shift_a"].update(target="tiny_src"), "nothing shifts"),
        (lambda c: c["shifts"]["pairs"]["shift_a"].update(fit=False) or c["ttt"].update(shifts=["shift_a"])
         or c["shifts"]["pairs"].update(tta={"kind": "contrast", "source": "tiny_shift", "target": "tiny_src",
                                             "fit": False}), "ttt.shifts does not name it"),
        (lambda c: c["shifts"]["pairs"]["hardest"].update(fit=False), "only for the fit"),
        (lambda c: c["shifts"]["pairs"]["hardest"].pop("filter"), "needs 'filter'"),
        (lambda c: c["shifts"]["pairs"]["hardest"].update(filter="no_such_variant"), "no_such_variant"),
        (lambda c: c["shifts"]["pairs"]["hardest"].update(fraction=1.5), "fraction"),
        (lambda c: c["ttt"].update(shifts=["hardest"]), "filtered shift"),
        (lambda c: c["ttt"].update(methods=["unet_a"]), "cannot be test-time trained"),
        (lambda c: c["ttt"].update(window=0), "window"),
        (lambda c: c["ttt"].update(max_steps=9), "max_steps 9 < 5 x window 2"),
        (lambda c: c["masks"]["random4x"].update(center_fraction=0.3), "center_fraction: 0.3 is more than 1/acceleration"),
        (lambda c: c["datasets"].update(tiny_src={"kind": "fastmri", "splits": {"test": {"archives": [
            {"url": "https://a.example/x/knee.tar", "sha256": "0" * 64}]}, "val": {"archives": [
            {"url": "https://b.example/y/knee.tar", "sha256": "1" * 64}]}}}), "also the name of"),
        (lambda c: c["methods"]["unet_a"].update(self_supervised=1.0), "input: complex"),
        (lambda c: c.update(plots={"dpi": 10}), "dpi"),
        (lambda c: c["methods"].update({"zf-2": {"family": "zero_filled"}}), "methods: name 'zf-2' must be letters"),
        (lambda c: c["datasets"].update({"a b": c["datasets"]["tiny_src"]}), "datasets: name 'a b' must be letters"),
        (lambda c: c.update(plots={"example_methods": ["no_such_variant"]}), "plots.example_methods"),
        (lambda c: c.update(plots={"example_epsilon": 0.5}), "plots.example_epsilon"),
    ],
)
def test_bad_config_is_refused(tiny, mutate, words):
    cfg = copy.deepcopy(tiny)
    mutate(cfg)
    with pytest.raises(ValueError) as err:
        Study.from_config(cfg)
    assert words in str(err.value)


def test_a_shift_only_ttt_adapts_to_may_have_its_own_source(tiny):
    """fit: false (the TTT study's modality shift): the evaluated variants need not learn from its source; it
    leaves the fit and stays a TTT shift, whose networks the TTT jobs take trained on its source and target."""
    cfg = copy.deepcopy(tiny)
    cfg["shifts"]["pairs"]["back"] = {"kind": "contrast", "source": "tiny_shift", "target": "tiny_src", "fit": False}
    cfg["ttt"]["shifts"] = ["shift_a", "back"]
    study = Study.from_config(cfg)
    assert set(study.fitted_shifts()) == {"shift_a", "hardest"} and "back" in study.shift_pairs()
    assert study.ttt_settings("back")["spec"]["window"] == 2  # the config's window; by kind it would be 20
    # the registry's (the study's) rate for every family the config's ttt.lr leaves out
    cfg["ttt"]["lr"] = {"unet": "1e-4"}
    lr = TTTSpec.from_config(Study.from_config(cfg).ttt_settings("back")["spec"]).lr
    assert lr == {**families.STUDY_LR, "unet": 1e-4} and set(lr) == set(families.names(trained=True))
    # the held-out draw's switches are spelt out with their defaults (a changed default reruns the TTT jobs)
    del cfg["ttt"]["holdout_center"]
    cfg["masks"]["random4x"]["center_fraction"] = 0.125  # lines outside the centre, so the default can apply
    spec = Study.from_config(cfg).ttt_settings("back")["spec"]
    assert spec["hide_holdout"] is False and spec["holdout_center"] is True
    cfg["shifts"]["pairs"]["back"]["fit"] = True  # in the fit, variants trained on tiny_src would not be in distribution
    with pytest.raises(ValueError, match="learns from"):
        Study.from_config(cfg)


def test_unknown_colour_map_is_refused_by_the_figure_jobs(tiny):
    plots = Study.from_config(copy.deepcopy(tiny)).config["plots"]
    check_colormaps(plots)
    with pytest.raises(ValueError, match=r"plots\.error_cmap: 'no_such_map' is not a matplotlib colour map"):
        check_colormaps({**plots, "error_cmap": "no_such_map"})


@pytest.mark.parametrize("name", ["config.yaml", "demo_full.yaml", "real.yaml"])
def test_shipped_configs_pass_except_for_missing_data(name):
    cfg = yaml.safe_load((ROOT / "config" / name).read_text())
    if name == "real.yaml":  # its data folders are the user's to fill in: the first missing one is named
        with pytest.raises(ValueError, match=r"datasets\.\w+\.splits\.\w+\.path: folder"):
            Study.from_config(cfg)
        return
    study = Study.from_config(cfg)
    assert study.config["evaluation"]["datasets"] and study.config["evaluation"]["masks"]


def test_real_full_overlay_keeps_real_yaml_but_the_counts():
    """config/real_full.yaml on top of config/real.yaml: every test file, 3 attacked and 5 TTT slices per volume;
    the rest as real.yaml (whose data folders are the user's to fill in)."""
    from snakemake.utils import update_config

    real = yaml.safe_load((ROOT / "config" / "real.yaml").read_text())
    full = copy.deepcopy(real)
    update_config(full, yaml.safe_load((ROOT / "config" / "real_full.yaml").read_text()))
    with pytest.raises(ValueError, match=r"datasets\.\w+\.splits\.\w+\.path: folder"):
        Study.from_config(full)
    for split, share in (("val", [0.0, 0.1]), ("test", [0.0, 0.3])):
        assert real["datasets"]["knee"]["splits"][split]["share"] == share
        assert full["datasets"]["knee"]["splits"][split] == {**real["datasets"]["knee"]["splits"][split], "share": [0.0, 1.0]}
    assert (real["attacks"]["slices"], full["attacks"]["slices"]) == (1, 3)
    assert (real["ttt"]["slices"], full["ttt"]["slices"]) == (3, 5)
    assert {k: v for k, v in full.items() if k not in ("datasets", "attacks", "ttt")} == \
        {k: v for k, v in real.items() if k not in ("datasets", "attacks", "ttt")}


def test_defaults_filled_once(tiny):
    cfg = copy.deepcopy(tiny)
    study = Study.from_config(cfg)
    assert cfg == tiny  # the input is not modified
    c = study.config
    assert c["evaluation"]["datasets"] == list(c["datasets"])  # tiny gives none: every dataset
    assert "cmap" in c["plots"]  # schema defaults filled in
    pairs = study.shift_pairs()
    for name, pair in pairs.items():  # a shift's mask defaults to the training mask, its target_mask to its mask
        given = tiny["shifts"]["pairs"][name]
        assert pair["mask"] == given.get("mask", c["training"]["mask"])
        assert pair["target_mask"] == given.get("target_mask", pair["mask"])
    # the filter variant of the filtered shift is in no table or experiment
    filters = study.filter_methods()
    assert filters and not set(filters) & set(study.evaluated_methods())
    assert study.experiment("attacks")["methods"] == tiny["attacks"].get("methods", study.evaluated_methods())
    assert study.bootstrap == tiny["shifts"].get("bootstrap", 1000)


def test_exponent_strings_are_numbers(tiny):
    cfg = copy.deepcopy(tiny)
    cfg["methods"]["l1_a"]["lam"] = "1e-3"  # what PyYAML makes of `lam: 1e-3`
    assert Study.from_config(cfg).config["methods"]["l1_a"]["lam"] == 0.001


def test_registry_answers_what_the_rules_ask(tiny):
    study = Study.from_config(copy.deepcopy(tiny))
    for method, cfg in study.methods.items():
        fam = families.family(cfg["family"])
        assert study.family(method) is fam
        assert study.seed_of(method) == (study.config["seed"] if fam.seeded else None)
        assert (method in study.trained_methods()) == fam.trained
    # maps: ℓ1 and ConvDecoder always, a U-Net only with complex input
    by_family = {f: [m for m in study.methods if study.methods[m]["family"] == f] for f in families.NAMES}
    assert all(study.needs_maps(m) for m in by_family["l1"] + by_family["convdecoder"])
    assert not any(study.needs_maps(m) for m in by_family["zero_filled"])
    for m in by_family["unet"]:
        assert study.needs_maps(m) == (study.methods[m].get("input") == "complex")
    with pytest.raises(ValueError, match="unknown family 'l2'"):
        families.family("l2")
    assert families.rank("l2") == len(families.NAMES)
    assert set(families.PAPER_FAMILIES) == {"l1", "convdecoder", "unet", "varnet"}


def test_every_untrained_family_builds_its_method():
    for fam in families.REGISTRY:
        if fam.trained or fam.name == "external":  # a user's class: tests/test_external.py
            continue
        method = load_method("v", {"family": fam.name}, "cpu")
        assert isinstance(method, Method) and method.family == fam.name
        assert type(method).__name__ == fam.method
    with pytest.raises(ValueError, match="needs its trained model file"):
        load_method("v", {"family": "unet"}, "cpu")
    with pytest.raises(ValueError, match="unknown family"):
        load_method("v", {"family": "l2"}, "cpu")


def test_every_trained_family_parses_to_its_own_spec_class():
    # the registry's network_spec is what spec_from_config picks and what a checkpoint's family is read back from
    from robustcs.families import family_of, spec_from_config

    for fam in families.REGISTRY:
        if fam.trained:
            spec = spec_from_config({"family": fam.name})
            assert type(spec) is fam.network_spec and family_of(spec) == fam.name
            assert fam.parse({"family": fam.name}) == spec


def test_scripts_receive_specs_decoded_from_the_rules_canonical_params(tiny):
    """robustcs.params turns what each rule passes (canonical JSON from the study model) into the spec the
    library takes; no rule script parses JSON params itself."""
    import re

    from robustcs import params
    from robustcs.masks import MaskSpec
    from robustcs.sensitivities import EspiritSpec
    from robustcs.specs import AttackSpec, FeatureSpec
    from robustcs.study import canonical

    study = Study.from_config(tiny)
    plan = params.attack(canonical(study.attack_settings()))
    assert plan.spec == AttackSpec(epsilons=(0.05,), steps=2) and plan.slices == 1 and plan.save_perturbations
    assert params.features(canonical(study.feature_settings())) == FeatureSpec.from_config(study.feature_settings())
    plan = params.ttt(canonical(study.ttt_settings("shift_a")))
    assert plan.slices == 1 and plan.spec.lr == {"unet": 1e-4, "varnet": 1e-3} and plan.spec.window == 2
    assert plan.reference_ttt  # tiny.yaml turns Q->Q+TTT on
    # off (the default), the key stays out of the params, so that configs without it keep their TTT jobs
    off = copy.deepcopy(tiny)
    off["ttt"]["reference_ttt"] = False
    settings = Study.from_config(off).ttt_settings("shift_a")
    assert "reference_ttt" not in settings and not params.ttt(canonical(settings)).reference_ttt
    for name in study.methods:
        if study.family(name).trained:
            assert params.network(canonical(study.variant_settings(name))) == study.spec(name)
    assert params.mask(canonical(tiny["masks"]["random4x"])) == MaskSpec(**tiny["masks"]["random4x"])
    assert params.espirit(canonical(tiny["sensitivities"]["espirit"])) == EspiritSpec(**tiny["sensitivities"]["espirit"])
    assert params.plain(canonical({"b": [1, 2], "a": None})) == {"a": None, "b": [1, 2]}
    with pytest.raises(ValueError, match="family"):
        params.network(canonical({"family": "l1", "lam": 0.1}))
    for script in sorted((ROOT / "workflow" / "scripts").glob("*.py")):
        assert not re.search(r"json\.loads\((snakemake\.)?params", script.read_text()), script.name


def test_splits_reading_one_folder_take_disjoint_shares(tiny, tmp_path):
    cfg = copy.deepcopy(tiny)
    folder = str(tmp_path)
    cfg["datasets"]["split_by_file"] = {"kind": "stanford", "splits": {
        "train": {"path": folder, "share": [0, 0.75]}, "test": {"path": folder + "/.", "share": [0.75, 1]}}}
    Study.from_config(cfg)  # disjoint shares of one folder (spelt two ways)
    splits = cfg["datasets"]["split_by_file"]["splits"]
    for train, test, words in (([0, 0.8], [0.75, 1], "overlap"), (None, [0.75, 1], "read the same files"),
                               ([0.5, 0.5], [0.75, 1], "a < b")):
        splits["train"] = {"path": folder, **({"share": train} if train else {})}
        splits["test"] = {"path": folder, "share": test}
        with pytest.raises(ValueError, match=words):
            Study.from_config(cfg)
    splits["train"] = {"path": folder, "share": [0, 1.5]}
    with pytest.raises(ValueError, match="share"):
        Study.from_config(cfg)


def test_tuning_scores_every_papers_family_on_the_validation_split_by_default(tiny):
    """Each papers' family is represented in the clean ordering by its variant chosen on the validation split:
    by default the tuning scores the variants of all four (trained ones too), no baseline, no filter variant."""
    study = Study.from_config(copy.deepcopy(tiny))
    dataset, mask, split, variants = study.tuning_case()
    assert (dataset, mask, split) == ("tiny_src", "random4x", "val")
    assert variants == ["l1_a", "cd_a", "unet_a", "varnet_a", "unet_c"]  # not zf, cg_a or the filter unet_filter
    assert {study.methods[m]["family"] for m in variants} == set(families.PAPER_FAMILIES)
    for chosen, expected in (([], []), (["l1", "cgsense"], ["l1_a", "cg_a"]), (["varnet"], ["varnet_a"])):
        cfg = copy.deepcopy(tiny)
        cfg["tuning"] = {"families": chosen}
        assert Study.from_config(cfg).tuning_case()[3] == expected


@pytest.mark.parametrize(
    "mutate,words",
    [
        # the tiny demo volumes have 2 slices: 5 were silently capped to 2 by the attack jobs
        (lambda c: c["attacks"].update(slices=5), "config attacks.slices: 5 central slices per test volume, but the "
         "volumes of dataset 'tiny_src' have 2 (datasets.tiny_src.demo.slices_per_volume); at most 2"),
        (lambda c: c["features"].update(slices=3), "config features.slices: 3"),
        (lambda c: c["ttt"].update(slices=3), "config ttt.slices: 3 central slices per test volume, but the volumes "
         "of dataset 'tiny_shift' have 2"),
        (lambda c: c["datasets"]["tiny_src"].update(slices={"middle": 3}), "config datasets.tiny_src.slices.middle: 3"),
        # fewer slices chosen than the volumes have: the chosen count is the limit, and the field named
        (lambda c: c["datasets"]["tiny_src"]["demo"].update(slices_per_volume=6)
         or c["datasets"]["tiny_src"].update(slices={"middle": 1}) or c["attacks"].update(slices=2),
         "config attacks.slices: 2 central slices per test volume, but the volumes of dataset 'tiny_src' have 1 "
         "(datasets.tiny_src.slices.middle)"),
        # the loss history of every attack is allocated when it starts: 1e12 steps failed there, after the
        # reconstructions
        (lambda c: c["attacks"].update(steps=10**12), "steps"),
        (lambda c: c["attacks"].update(steps=50_000) or c["attacks"]["effort"].update(factors=[2, 4]),
         "config attacks.effort.factors: 4 x attacks.steps 50000 = 200000 steps, more than 100,000"),
        (lambda c: c["attacks"]["effort"].update(slices=2), "config attacks.effort.slices: 2 test files, but dataset "
         "'tiny_src' has 1 (datasets.tiny_src.demo.volumes.test)"),
        (lambda c: c["features"].update(sizes=[40], margin=5), "config features.sizes: a feature of 40 px with its "
         "margin of 5 px on each side (50 px) does not fit the 48 px images of dataset 'tiny_src'"),
        # 2 shapes x 3 contrasts: 6 windows of 21 px each (with the gap), 2,646 px² in a 48 x 48 image (2,304 px²)
        (lambda c: c["features"].update(sizes=[10], margin=5, shapes=["square", "disc"], contrasts=[0.1, 0.2, 0.3]),
         "config features: 6 features per slice (shapes x sizes x contrasts), whose windows with their margins cover "
         "2646 px², more than the 48x48 images"),
    ],
)
def test_counts_beyond_the_demo_data_fail_at_startup(tiny, mutate, words):
    cfg = copy.deepcopy(tiny)
    mutate(cfg)
    with pytest.raises(ValueError) as err:
        Study.from_config(cfg)
    assert words in str(err.value)


def test_counts_within_the_data_and_folder_datasets_pass(tiny, tmp_path):
    cfg = copy.deepcopy(tiny)
    cfg["attacks"]["slices"] = 2  # exactly the volumes' slices
    cfg["features"].update(sizes=[37], margin=5)  # 47 px, and 48 x 48 with its gap: the whole image
    Study.from_config(cfg)
    # a folder's slices are not known at start-up: its jobs take what the files have and log the cap
    cfg["datasets"]["folder"] = {"kind": "fastmri", "splits": {"test": {"path": str(tmp_path)}}}
    cfg["attacks"].update(slices=40, datasets=["folder"])
    Study.from_config(cfg)

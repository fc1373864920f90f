"""One home per setting: config/schema.yaml owns the types, ranges and defaults of the spec blocks (attacks,
features, ttt, sensitivities.espirit); the specs are built from the checked block by robustcs.specs.from_block and
check only what spans fields."""

import copy
import dataclasses
import math

import pytest
import yaml

from conftest import TINY_CONFIG as TINY
from robustcs import configcheck, params
from robustcs.sensitivities import EspiritSpec
from robustcs.specs import AttackSpec, FeatureSpec, TTTSpec, from_block
from robustcs.study import SCHEMA, Study, canonical

#: spec class -> the schema block it views, and its fields whose default is code's, not the schema's (with why)
VIEWS = {
    AttackSpec: (("attacks",), {}),
    FeatureSpec: (("features",), {}),
    TTTSpec: (("ttt",), {"window": "by the shift's kind (Study.ttt_settings)",
                         "lr": "the registry's study rates (families.STUDY_LR)"}),
    EspiritSpec: (("sensitivities", "espirit"), {}),
}


def _block(keys):
    node = configcheck.load_schema(SCHEMA)
    for key in keys:
        node = node["properties"][key]
    return node["properties"]


@pytest.fixture(scope="module")
def tiny():
    return yaml.safe_load(TINY.read_text())


@pytest.mark.parametrize("cls", list(VIEWS), ids=lambda c: c.__name__)
def test_every_dataclass_default_is_the_schema_default(cls):
    keys, code_defaults = VIEWS[cls]
    props = _block(keys)
    for f in dataclasses.fields(cls):
        assert f.name in props, f"{cls.__name__}.{f.name} is not a field of the schema block {'.'.join(keys)}"
        if f.name in code_defaults:
            assert "default" not in props[f.name], f"{f.name}: its default is code's ({code_defaults[f.name]})"
            continue
        assert "default" in props[f.name], f"schema {'.'.join(keys)}.{f.name} states no default"
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        assert from_block(cls, {f.name: props[f.name]["default"]}, "x") == cls(), f"{cls.__name__}.{f.name}"
        assert getattr(cls(), f.name) == getattr(from_block(cls, {f.name: default}, "x"), f.name)


@pytest.mark.parametrize(
    "block, key, value, words",
    [
        ("attacks", "epsilons", [-0.1], "attacks.epsilons[0]: got -0.1"),
        ("attacks", "epsilons", [], "attacks.epsilons"),
        ("attacks", "reference", "x", "attacks.reference: 'x' is not allowed"),
        ("attacks", "steps", 0, "attacks.steps: got 0; expected integer >= 1"),
        ("attacks", "cd_weight", 1.0, "unbounded"),  # the schema's description says why
        ("attacks", "cd_weight", 0, "attacks.cd_weight: got 0"),
        ("attacks", "batch", -1, "attacks.batch: got -1"),
        ("attacks", "cd_steps", 10, "attacks.cd_steps: unknown key"),
        ("features", "sizes", [0], "features.sizes[0]"),
        ("features", "sizes", [3, 3], "features.sizes"),
        ("features", "sizes", [True], "features.sizes[0]"),
        ("features", "contrasts", [float("nan")], "features.contrasts[0]: expected a finite number"),
        ("features", "contrasts", ["a"], "features.contrasts[0]"),
        ("features", "shapes", ["triangle"], "features.shapes[0]: 'triangle' is not allowed"),
        ("features", "margin", 1.5, "features.margin: got 1.5"),
        ("features", "min_intensity", 1.0, "features.min_intensity: got 1.0"),
        ("features", "slices", 0, "features.slices: got 0"),
        ("features", "colour", "red", "features.colour: unknown key"),
        ("ttt", "window", 0, "ttt.window: got 0"),
        ("ttt", "holdout", 1.5, "ttt.holdout: got 1.5"),
        ("ttt", "hide_holdout", "yes", "ttt.hide_holdout: got 'yes'; expected boolean"),
        ("ttt", "holdout_lines", "yes", "ttt.holdout_lines: got 'yes'; expected boolean"),
        ("ttt", "precision", "fp64", "ttt.precision: 'fp64' is not allowed"),
        ("ttt", "lr", {"unet": 0}, "ttt.lr.unet: got 0"),
        ("ttt", "max_steps", 9, "ttt: max_steps 9 < 5 x window 2"),  # the one cross-field check of the spec
    ],
)
def test_out_of_range_values_are_refused_at_startup_naming_the_field(tiny, block, key, value, words):
    cfg = copy.deepcopy(tiny)
    cfg[block][key] = value
    with pytest.raises(ValueError) as err:
        Study.from_config(cfg)
    assert words in str(err.value)


def test_the_defaults_reach_the_jobs_params_from_the_schema(tiny):
    cfg = copy.deepcopy(tiny)
    for key in ("steps", "slices"):
        del cfg["attacks"][key]
    del cfg["features"]["margin"], cfg["ttt"]["max_steps"], cfg["ttt"]["window"]  # max_steps 2500, window 20
    study = Study.from_config(cfg)
    attack = params.attack(canonical(study.attack_settings()))
    assert attack.spec.steps == 20 and attack.slices == 1 and attack.spec == AttackSpec(epsilons=(0.05,))
    assert params.features(canonical(study.feature_settings())).margin == 3
    ttt = params.ttt(canonical(study.ttt_settings("shift_a")))
    assert ttt.spec.max_steps == 2500 and ttt.spec.window == 20 and ttt.spec.holdout == 0.05 and ttt.spec.hide_holdout is False  # kind dataset
    assert study.bootstrap == 200
    del cfg["shifts"], cfg["ttt"]
    assert Study.from_config(cfg).bootstrap == configcheck.schema_default(SCHEMA, "shifts", "bootstrap") == 1000


def test_a_study_without_an_experiment_block_reads_its_settings_as_the_schema_fills_them(tiny):
    """The attack and feature rules are defined whatever the config holds, so their params are read from a study
    without those blocks too: the schema's defaults, as validation fills an empty block."""
    cfg = copy.deepcopy(tiny)
    del cfg["attacks"], cfg["features"]
    study = Study.from_config(cfg)
    filled = Study.from_config({**copy.deepcopy(tiny), "attacks": {"epsilons": [0.05]}, "features": {}})
    attack = study.attack_settings()
    assert attack["slices"] == filled.attack_settings()["slices"] and "save_perturbations" in attack
    assert study.feature_settings() == filled.feature_settings()


def test_from_block_gives_the_specs_types_and_names_unknown_keys():
    spec = from_block(AttackSpec, {"epsilons": [1, 0.5], "init": 1, "steps": 3.0}, "attacks")
    assert spec.epsilons == (1.0, 0.5) and isinstance(spec.epsilons[0], float)
    assert isinstance(spec.init, float) and spec.steps == 3 and isinstance(spec.steps, int)
    assert from_block(TTTSpec, {"lr": {"unet": 1}}, "ttt").lr == {"unet": 1.0}
    assert FeatureSpec.from_config({"sizes": 4, "shapes": "disc"}).sizes == (4,)
    with pytest.raises(ValueError, match=r"^attacks: unknown key\(s\) \['stepz'\]"):
        from_block(AttackSpec, {"stepz": 3}, "attacks")
    with pytest.raises(ValueError, match="expected a mapping"):
        from_block(AttackSpec, [1], "attacks")


def test_non_finite_numbers_are_found_wherever_they_are():
    assert configcheck.non_finite({"a": [1.0, {"b": math.inf}]}) == ("a[1].b", math.inf)
    assert configcheck.non_finite({"a": [1.0, "nan", 2]}) is None


def test_the_librarys_fallback_defaults_are_the_schemas():
    # the statistics modules keep defaults for callers outside the workflow (tests, notebooks); the rules pass the
    # config's values, so these constants must state the schema's defaults, not defaults of their own
    from robustcs import attack_effort, attack_stats, clean_stats, feature_stats, plots, shifts

    findings = _block(("findings",))
    library = {"attack_margin_db": attack_stats.MARGIN_DB, "attack_comparison_margin": attack_stats.COMPARISON_MARGIN,
               "shift_margin": shifts.SHIFT_MARGIN, "min_volumes": shifts.MIN_VOLUMES,
               "feature_min_correlation": feature_stats.MIN_CORRELATION, "clean_tie_db": clean_stats.TIE_DB,
               "clean_tie_ssim": clean_stats.TIE_SSIM}
    assert {key: findings[key]["default"] for key in library} == library
    effort = _block(("attacks", "effort"))
    assert {key: node["default"] for key, node in effort.items()} == attack_effort.EFFORT_DEFAULTS
    dpi = _block(("plots",))["dpi"]
    assert dpi["minimum"] == dpi["default"] == plots.MIN_DPI


# ---- the method families' settings: config/schema.yaml $defs method_<family> -------------------------------------


def _family_definitions():
    from robustcs import families

    defs = configcheck.load_schema(SCHEMA)["$defs"]
    return {name: defs[f"method_{name}"] for name in families.NAMES}, defs


def test_every_family_has_a_schema_definition_whose_defaults_are_its_specs():
    from robustcs import families, specs

    found, defs = _family_definitions()
    parse = {"l1": specs.L1Spec, "cgsense": specs.CGSenseSpec, "convdecoder": specs.ConvDecoderSpec,
             **families.NETWORK_SPECS}
    assert set(parse) == set(found) - {"zero_filled", "external"}
    for name, cls in parse.items():
        node = found[name]
        assert node["additionalProperties"] is False, f"method_{name}: unknown keys must be refused"
        props = {k: defs[v["$ref"].rsplit("/", 1)[-1]] if "$ref" in v else v for k, v in node["properties"].items()}
        assert {f.name for f in dataclasses.fields(cls)} == set(props) - {"family", "train_on", "train_mask",
                                                                          "checkpoint"}, name
        for f in dataclasses.fields(cls):
            assert "default" in props[f.name] and props[f.name].get("description"), f"method_{name}.{f.name}"
            schema_default = from_block(cls, {f.name: props[f.name]["default"]}, "x")
            assert schema_default == cls(), f"{cls.__name__}.{f.name}: dataclass default != schema default"
    zero_filled = found["zero_filled"]
    assert set(zero_filled["properties"]) == {"family"} and zero_filled["additionalProperties"] is False
    assert found["external"].get("additionalProperties", True) is True  # further keys go to the user's class


@pytest.mark.parametrize(
    "name, key, value, words",
    [
        ("l1_a", "lam", -1, "config methods.l1_a.lam: got -1; expected number >= 0"),
        ("l1_a", "lamda", 1, "config methods.l1_a.lamda: unknown key (did you mean 'lam'?)"),
        ("l1_a", "levels", 0, "config methods.l1_a.levels: got 0"),
        ("cg_a", "iterations", 0, "config methods.cg_a.iterations: got 0; expected integer >= 1"),
        ("cd_a", "input_shape", [4, 4, 4], "config methods.cd_a.input_shape: [4, 4, 4] is too long"),
        ("cd_a", "fit_batch", 65, "config methods.cd_a.fit_batch: got 65; expected integer >= 1 <= 64"),
        ("unet_a", "train_fraction", 2, "config methods.unet_a.train_fraction: got 2"),
        ("varnet_a", "maps", "x", "config methods.varnet_a.maps: 'x' is not allowed"),
        ("zf", "lam", 1, "config methods.zf.lam: unknown key"),
        ("unet_c", "self_supervised", -1.0, "config methods.unet_c.self_supervised: got -1.0"),
    ],
)
def test_a_variants_bad_setting_is_refused_at_startup_naming_the_field(tiny, name, key, value, words):
    cfg = copy.deepcopy(tiny)
    cfg["methods"][name][key] = value
    with pytest.raises(ValueError) as err:
        Study.from_config(cfg)
    assert words in str(err.value)


def test_the_methods_defaults_stay_out_of_the_jobs_params(tiny):
    """The schema's method defaults are the specs', never written into a variant's params (which would rerun every
    job of a finished study): the params are the keys as given, the spec has the defaults."""
    study = Study.from_config(copy.deepcopy(tiny))
    for name in study.methods:
        assert study.method_params(name) == tiny["methods"][name], name
    assert study.spec("l1_a").wavelet == "db4" and study.spec("cd_a").lr == 0.008 and study.spec("cd_a").fit_batch == 1
    assert study.spec("unet_a").precision == "fp32" and study.spec("varnet_a").loss == "ssim"

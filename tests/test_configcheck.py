"""robustcs.configcheck: strict YAML, typed --config overrides, one-line schema errors, compute.runtime."""

import pytest
import yaml

from conftest import TINY_CONFIG as TINY
from robustcs import configcheck
from robustcs.study import SCHEMA, Study


def test_strict_load_refuses_a_duplicate_key_naming_file_line_and_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 0\nmethods:\n  zf: {family: zero_filled}\n  l1: {family: l1}\n  zf: {family: l1}\n")
    assert yaml.safe_load(path.read_text())["methods"]["zf"] == {"family": "l1"}  # what PyYAML alone does
    with pytest.raises(ValueError, match=rf"config file {path}, line 5: key 'zf' is given twice.*first on line 3"):
        configcheck.strict_load(path)
    path.write_text("a: {b: 1, b: 2}\n")  # in a flow mapping on one line too
    with pytest.raises(ValueError, match="line 1: key 'b'"):
        configcheck.strict_load(path)
    path.write_text("a: {b: 1}\nc: {b: 1}\n")  # one key in two blocks is fine
    assert configcheck.strict_load(path) == {"a": {"b": 1}, "c": {"b": 1}}


def test_shipped_configs_have_no_duplicate_keys():
    configcheck.check_files(sorted(TINY.parents[2].glob("config/*.yaml")) + [TINY])


def test_typed_overrides():
    raw = {"seed": 3, "compute": {"threads": "3", "runtime": {"ttt": "90"}}, "ttt": {"holdout_center": "false",
           "name": "abc", "lr": "1.0e-4", "window": "null"}, "list": ["1", "x"]}
    typed = configcheck.typed_overrides(raw)
    assert typed["compute"] == {"threads": 3, "runtime": {"ttt": 90}}
    assert typed["ttt"] == {"holdout_center": False, "name": "abc", "lr": 1.0e-4, "window": None}
    assert typed["list"] == [1, "x"] and typed["seed"] == 3


def _schema_error(mutate) -> str:
    cfg = yaml.safe_load(TINY.read_text())
    mutate(cfg)
    with pytest.raises(ValueError) as err:
        Study.from_config(cfg)
    return str(err.value)


def test_schema_errors_have_one_summary_line_first():
    msg = _schema_error(lambda c: c["masks"]["random4x"].update(type="randon"))
    first = msg.splitlines()[0]
    assert first.startswith("config masks.random4x.type: 'randon' is not allowed (did you mean 'random'?)"), msg
    assert len(msg.splitlines()) <= 1 + 1 + configcheck.MAX_DETAILS and "$defs" not in msg
    msg = _schema_error(lambda c: c["compute"].update(gpus="two"))
    assert msg.splitlines()[0] == "config compute.gpus: got 'two'; expected integer >= 0"
    msg = _schema_error(lambda c: c.pop("masks"))
    assert msg.splitlines()[0] == "config (top level): missing required key(s) 'masks'"


def test_schema_error_none_for_a_valid_config():
    cfg = yaml.safe_load(TINY.read_text())
    assert configcheck.schema_error(cfg, configcheck.load_schema(SCHEMA)) is None


def test_runtime_from_config_with_registry_defaults():
    cfg = yaml.safe_load(TINY.read_text())
    study = Study.from_config(cfg)
    # today's values are the defaults (a run's resources, and so its tables, unchanged)
    assert [study.minutes(k) for k in ("download", "ingest", "masks", "sensitivities", "evaluate", "ttt")] == [
        600, 120, 10, 60, 10, 240]
    assert study.minutes("reconstruct", "cd_a") == 240 and study.minutes("attack", "l1_a") == 240
    cfg["compute"]["runtime"] = {"ttt": 30, "reconstruct": {"convdecoder": 900}, "attack": {"unet": 5}}
    study = Study.from_config(cfg)
    assert study.minutes("ttt") == 30 and study.minutes("reconstruct", "cd_a") == 900
    assert study.minutes("attack", "unet_a") == 5 and study.minutes("attack", "varnet_a") == 60
    cfg["compute"]["runtime"] = {"reconstruct": {"convdecoderr": 900}}
    with pytest.raises(ValueError, match=r"compute\.runtime\.reconstruct\.convdecoderr: unknown family "
                                         r"\(did you mean 'convdecoder'\?\)"):
        Study.from_config(cfg)


def test_nested_attacks_override_merges_as_the_cli_does():
    """`--config "attacks={'steps': 3, 'epsilons': [0.01, 0.02]}"` on the tiny config, as Snakemake parses and
    merges it, then typed: the keys given change (numbers, not strings), the block's others stay."""
    from snakemake.cli import parse_config
    from snakemake.utils import update_config

    cfg = yaml.safe_load(TINY.read_text())
    raw = parse_config(["attacks={'steps': 3, 'epsilons': [0.01, 0.02]}"])
    assert raw["attacks"]["steps"] == "3"  # Snakemake's parser alone leaves nested scalars strings
    update_config(cfg, configcheck.typed_overrides(raw))
    attacks = Study.from_config(cfg).config["attacks"]
    assert attacks["steps"] == 3 and attacks["epsilons"] == [0.01, 0.02]
    assert attacks["datasets"] == ["tiny_src"] and attacks["effort"] == {"slices": 1, "factors": [2]}

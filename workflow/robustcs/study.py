"""The study model: what a config means, with every default filled in once and every cross-check run once.

``Study.from_config(config)`` reads a config dict (as loaded from YAML), coerces YAML's exponent strings to
numbers, validates it against ``config/schema.yaml`` (filling the schema's defaults), fills the defaults the
schema cannot express (evaluated datasets and masks, each shift's masks, each experiment's datasets, masks
and variants) and runs every check that spans fields (names that must exist, variants' own settings through
their family's parser, which variant can be attacked, shifted or test-time trained). Each error is a
ValueError naming the config field and what was expected, raised before any job runs.

Snakemake calls it at start-up (``workflow/rules/common.smk``); tests call it directly, in milliseconds. The
rules ask the model for the study's experiments: variants of a family, where a variant trains, the shift
pairs, each experiment's block, TTT settings, the tuning case. What needs the data (the files of a split)
stays in the rules, behind the ingest checkpoint.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from . import configcheck, families, pretrained
from .download import archive_name
from .util import coerce_numbers

#: Names of datasets, masks, variants and shifts: they become folder names, and they appear in the report's
#: reStructuredText, where a word ending in '_' is a link to a target that does not exist.
NAME = r"[A-Za-z0-9](?:[A-Za-z0-9_]*[A-Za-z0-9])?"
SCHEMA = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"
#: Keys of a variant's block that say where it trains, not what it is.
WORKFLOW_KEYS = ("train_on", "train_mask", "checkpoint")
#: Keys of an experiment block that choose what it runs on (not the experiment's own settings).
EXPERIMENT_KEYS = ("datasets", "masks", "methods", "slices")
#: The study's self-validation windows W of test-time training, by shift kind.
TTT_WINDOW = {"anatomy": 100, "acceleration": 100, "dataset": 20, "contrast": 20}
#: Bootstrap resamples of the shift fits and TTT intervals when the config gives none.
BOOTSTRAP = 1000


def canonical(obj: Any) -> str:
    """A config block as canonical JSON for rule ``params:``, so that reordering keys in the config file does
    not count as a change (Snakemake reruns a job when its params' text changes)."""
    return json.dumps(obj, sort_keys=True)


def _wrap(where: str, check) -> Any:
    """``check()``, its TypeError/ValueError re-raised as a ValueError prefixed with the config field."""
    try:
        return check()
    except (TypeError, ValueError) as err:
        raise ValueError(f"config {where}: {err}") from None


def _check_names(config: dict) -> None:
    """Names of datasets, masks, variants and shifts become folder names: letters, digits and '_', not ending in '_'."""
    shifts = config.get("shifts")
    blocks = [(where, config.get(where)) for where in ("datasets", "masks", "methods")]
    blocks.append(("shifts.pairs", shifts.get("pairs") if isinstance(shifts, dict) else None))
    for where, block in blocks:
        for name in block if isinstance(block, dict) else ():
            if not re.fullmatch(NAME, str(name)):
                raise ValueError(f"config {where}: name {name!r} must be letters, digits and '_', starting and ending "
                                 "with a letter or digit (it becomes a folder name and a word of the report)")


class Study:
    """One configured study (see the module docstring). ``config`` is the filled-in config dict."""

    def __init__(self, config: dict):
        self.config = config
        self._specs: dict[str, Any] = {}  # parsed once per variant: input functions ask for every job
        self._boxes: list | None = None  # the pathology annotation file, read once

    @classmethod
    def from_config(cls, config: dict, schema: str | Path = SCHEMA) -> "Study":
        """Coerce, validate (schema defaults filled in), complete and check ``config`` (not modified)."""
        from snakemake.exceptions import WorkflowError
        from snakemake.utils import validate

        filled, _ = coerce_numbers(copy.deepcopy(dict(config)))
        _check_names(filled)  # before the schema, whose own pattern check would only print a dump of itself
        as_given = copy.deepcopy(filled)
        try:
            validate(filled, str(schema), set_default=True)
        except WorkflowError as err:
            # one line naming the field and what was expected (not jsonschema's dump of the whole schema)
            summary = configcheck.schema_error(as_given, configcheck.load_schema(schema))
            raise ValueError(summary or f"config does not match {Path(schema).name}: {err}") from None
        filled.setdefault("methods", {})
        filled["evaluation"].setdefault("datasets", list(filled["datasets"]))
        filled["evaluation"].setdefault("masks", list(filled["masks"]))
        study = cls(filled)
        study.check()
        return study

    # ---- variants ---------------------------------------------------------------------------------------

    @property
    def methods(self) -> dict:
        return self.config["methods"]

    def family(self, method: str) -> families.Family:
        return families.family(self.methods[method]["family"])

    def methods_of(self, *names: str) -> list[str]:
        """Variants (config order) of the given families."""
        return [m for m, c in self.methods.items() if c["family"] in names]

    def trained_methods(self) -> list[str]:
        return [m for m in self.methods if self.family(m).trained]

    def pretrained_methods(self) -> list[str]:
        """Variants that load published weights (``checkpoint:``, robustcs.pretrained) instead of training."""
        return [m for m, c in self.methods.items() if "checkpoint" in c]

    def method_regex(self, methods: list[str] | None = None) -> str:
        """Wildcard constraint matching exactly these variant names (default: all; never-matching if none)."""
        names = list(self.methods) if methods is None else methods
        return "|".join(re.escape(n) for n in names) if names else "(?!)"

    def variant_settings(self, method: str) -> dict:
        """A variant's own settings: its block without the workflow-level keys (where it trains)."""
        return {k: v for k, v in self.methods[method].items() if k not in WORKFLOW_KEYS}

    def spec(self, method: str) -> Any:
        """The variant's parsed settings (its family's spec object)."""
        if method not in self._specs:
            self._specs[method] = self.family(method).parse(self.variant_settings(method))
        return self._specs[method]

    def method_params(self, method: str) -> dict:
        """What the variant's jobs receive (rule params ``spec``): its settings, with its spec's ``stamp()`` where it
        has one (an external method's file hash, so that editing the file reruns its jobs)."""
        stamp = getattr(self.spec(method), "stamp", None)
        return {**self.variant_settings(method), **(stamp() if stamp else {})}

    def attackable(self, method: str) -> bool:
        return self.family(method).attackable(self.spec(method))

    def needs_maps(self, method: str) -> bool:
        """Whether the variant reads ESPIRiT maps (ℓ1, CG-SENSE, ConvDecoder, complex U-Net, ESPIRiT VarNet)."""
        return self.family(method).reads_maps(self.spec(method))

    def training_of(self, method: str) -> tuple[str, str]:
        """(dataset, mask) a trained variant learns from: its own train_on/train_mask or the training block."""
        cfg, training = self.methods[method], self.config.get("training") or {}
        return cfg.get("train_on", training.get("dataset")), cfg.get("train_mask", training.get("mask"))

    def seed_of(self, method: str) -> int | None:
        """The seed a reconstruction depends on (None for deterministic families)."""
        return self.config["seed"] if self.family(method).seeded else None

    def gpus_of(self, method: str) -> int:
        return self.config["compute"]["gpus"] if self.family(method).gpu else 0

    def minutes(self, kind: str, method: str | None = None) -> int:
        """A job's runtime limit (compute.runtime.<kind>; by the variant's family for reconstruct and attack)."""
        if method is None:
            return self.config["compute"]["runtime"][kind]
        fam = self.family(method)
        default = fam.recon_minutes if kind == "reconstruct" else fam.attack_minutes
        return self.config["compute"]["runtime"][kind].get(fam.name, default)

    def filter_methods(self) -> list[str]:
        """Variants that only select the slices of an adversarially filtered shift: left out of every table,
        fit and experiment (the study's filter model is not among the evaluated ones)."""
        return sorted({c["filter"] for c in self.shift_pairs().values() if c["kind"] == "filtered" and "filter" in c})

    def evaluated_methods(self) -> list[str]:
        filters = self.filter_methods()
        return [m for m in self.methods if m not in filters]

    # ---- cases and experiments --------------------------------------------------------------------------

    def source_case(self) -> tuple[str, str]:
        """The study's source P: the training set and mask, or (no training block) the first evaluated ones."""
        training, ev = self.config.get("training") or {}, self.config["evaluation"]
        return training.get("dataset", ev["datasets"][0]), training.get("mask", ev["masks"][0])

    def tuning_case(self) -> tuple[str, str, str, list[str]]:
        """(dataset, mask, split, variants) of the tuning on the source's validation split (config `tuning`; study:
        λ tuned there by SSIM): by default every variant of the papers' four families, so that each is represented
        in the clean ordering by its validation choice, not its best on test. No variants: no tuning."""
        block = self.config.get("tuning") or {}
        dataset, mask = self.source_case()
        chosen = block.get("families", list(families.PAPER_FAMILIES))
        variants = [m for m in self.evaluated_methods() if self.methods[m]["family"] in chosen  # fastMRI's
                    and m not in self.pretrained_methods()]  # checkpoints learnt from its val split too
        return block.get("dataset", dataset), block.get("mask", mask), block.get("split", "val"), variants

    def split_is_empty(self, dataset: str, split: str) -> bool:
        """True when the dataset has no volumes in a split (known from the config for demo and folder sources)."""
        cfg = self.config["datasets"][dataset]
        if cfg["kind"] == "demo":
            from .specs import DemoSpec

            volumes = cfg["demo"].get("volumes")
            return not (DemoSpec().volumes if volumes is None else volumes).get(split, 0)
        return split not in cfg.get("splits", {})

    def experiment(self, name: str) -> dict:
        """An experiment block with its defaults: datasets/masks as evaluated, every evaluated variant."""
        block = dict(self.config.get(name) or {})
        block.setdefault("datasets", list(self.config["evaluation"]["datasets"]))
        block.setdefault("masks", list(self.config["evaluation"]["masks"]))
        attackable = [m for m in self.evaluated_methods() if name != "attacks" or self.attackable(m)]
        block.setdefault("methods", attackable)  # the attacks leave out by default what cannot be attacked
        return block

    def attack_settings(self) -> dict:
        block = self.experiment("attacks")
        spec = {k: v for k, v in block.items() if k not in (*EXPERIMENT_KEYS, "save_perturbations", "effort")}
        return {"spec": spec, "slices": block.get("slices", 1), "save_perturbations": block.get("save_perturbations", True)}

    def attack_effort_settings(self) -> dict | None:
        """The attacks block's effort check with its defaults (robustcs.attack_effort.effort_settings); None: off."""
        from .attack_effort import effort_settings

        return _wrap("attacks.effort", lambda: effort_settings((self.config.get("attacks") or {}).get("effort")))

    def feature_settings(self) -> dict:
        """The feature spec (robustcs.features.FeatureSpec) of the features block, defaults filled in."""
        from .specs import FeatureSpec

        block = self.experiment("features")
        return FeatureSpec.from_config({k: v for k, v in block.items() if k not in EXPERIMENT_KEYS[:3]}).as_dict()

    def pathology_settings(self) -> dict:
        """What the pathology jobs read besides the data: the annotation file, whether its rows count from the
        bottom, and the labels kept (None: all)."""
        block = self.experiment("pathology")
        return {"annotations": block["annotations"], "flip_vertical": block.get("flip_vertical", True),
                "labels": block.get("labels")}

    def pathology_boxes(self) -> list:
        """The boxes of the annotation file (robustcs.annotations.Box), read once."""
        from .annotations import read_boxes

        if self._boxes is None:
            settings = self.pathology_settings()
            self._boxes = _wrap("pathology.annotations", lambda: read_boxes(settings["annotations"], settings["labels"]))
        return self._boxes

    def shift_pairs(self) -> dict:
        """Each configured shift with its defaults filled in: mask = the training mask, target_mask = mask,
        fit = true (in the in- vs out-of-distribution fit)."""
        out = {}
        for name, cfg in ((self.config.get("shifts") or {}).get("pairs") or {}).items():
            cfg = dict(cfg)
            cfg.setdefault("mask", (self.config.get("training") or {}).get("mask"))
            cfg.setdefault("target_mask", cfg["mask"])
            cfg.setdefault("fit", True)
            if cfg["kind"] == "filtered":
                cfg.setdefault("target", cfg["source"])
            out[name] = cfg
        return out

    def fitted_shifts(self) -> dict:
        """The shifts of the in- vs out-of-distribution fit (all but those with ``fit: false``, which only
        test-time training adapts to)."""
        return {name: cfg for name, cfg in self.shift_pairs().items() if cfg["fit"]}

    @property
    def bootstrap(self) -> int:
        """Bootstrap resamples of the shift fits and the TTT intervals."""
        return (self.config.get("shifts") or {}).get("bootstrap", BOOTSTRAP)

    def ttt_settings(self, shift: str) -> dict:
        """The TTT spec of one shift (robustcs.ttt.TTTSpec fields) and the slice count."""
        from .specs import TTTSpec

        block = self.config["ttt"]
        spec = {k: block[k] for k in ("max_steps", "holdout", "holdout_lines", "precision") if k in block}
        # the held-out draw's switches spelt out, defaults included, so that a changed default reruns TTT jobs
        for key in ("hide_holdout", "holdout_center"):
            spec[key] = block.get(key, getattr(TTTSpec, key))
        # the study's rate of every family the config leaves out (a mapping of other keys fails the TTT check)
        lr = block.get("lr", {})
        spec["lr"] = {**families.STUDY_LR, **lr} if isinstance(lr, dict) else lr
        spec["window"] = block.get("window", TTT_WINDOW[self.shift_pairs()[shift]["kind"]])
        settings = {"spec": spec, "slices": block.get("slices", 2)}
        for key in ("reference_ttt", "ablation_hidden"):  # only when on: configs without them keep their jobs' params
            if block.get(key, False):
                settings[key] = True
        return settings

    def example_methods(self, name: str) -> list[str]:
        """Variants shown in an experiment's example figure (config plots.example_methods, default all)."""
        chosen = self.config["plots"].get("example_methods")
        return [m for m in self.experiment(name)["methods"] if chosen is None or m in chosen]

    # ---- checks -----------------------------------------------------------------------------------------

    def check(self) -> None:
        """Every cross-field check, in the order a user would fix them (data, masks, variants, experiments)."""
        self._check_sources()
        configcheck.check_runtime(self.config["compute"]["runtime"])
        self._check_masks()
        self._check_methods()
        pretrained.check_study(self)
        self._check_experiments()
        self._check_shifts()
        self._check_ttt()
        self._check_plots()
        from .study_limits import check_limits  # slice counts and sizes within the demo data they run on

        check_limits(self)

    def _check_sources(self) -> None:
        configcheck.check_folders(self.config["datasets"])  # every missing data folder at once
        seen = {}
        for name, ds in self.config["datasets"].items():
            configcheck.check_shares(name, ds.get("splits") or {})
            for split, src in (ds.get("splits") or {}).items():
                for i, arch in enumerate(src.get("archives", [])):
                    where, fname = f"datasets.{name}.splits.{split}.archives[{i}]", archive_name(arch["url"])
                    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", fname):
                        raise ValueError(f"config {where}.url: file name {fname!r} must contain only letters, "
                                         "digits, '.', '_' and '-'")
                    other = seen.get((name, fname))  # two archives of one dataset with one file name collide
                    if other and other[1] != arch["url"]:
                        raise ValueError(f"config {where}.url: file name {fname!r} is also the name of {other[0]} "
                                         f"({other[1]}); both would be downloaded to results/downloads/{name}/{fname}")
                    seen[(name, fname)] = (where, arch["url"])

    def _check_masks(self) -> None:
        for name, m in self.config["masks"].items():
            if m["type"] == "random" and m.get("max_deviation", 0) < 0:
                raise ValueError(f"config masks.{name}.max_deviation must be >= 0")
            if m["center_fraction"] * m["acceleration"] > 1:
                raise ValueError(f"config masks.{name}.center_fraction: {m['center_fraction']} is more than "
                                 f"1/acceleration (1/{m['acceleration']}); the fully sampled centre alone would "
                                 "exceed the sampling budget")

    def _check_methods(self) -> None:
        """Each variant's settings through its family's own parser (names the variant and key), and the
        datasets/masks the training and evaluation blocks refer to."""
        c = self.config
        for name, cfg in self.methods.items():
            fam = _wrap(f"methods.{name}.family", lambda: families.family(cfg["family"]))
            extra = sorted(set(WORKFLOW_KEYS) & set(cfg))
            if extra and not fam.trained:
                raise ValueError(f"config methods.{name}: {extra} only apply to trained families "
                                 f"{families.names(trained=True)}")
            _wrap(f"methods.{name}", lambda: self.spec(name))
            if fam.trained:
                dataset, mask = self.training_of(name)
                if dataset not in c["datasets"]:
                    raise ValueError(f"config methods.{name}: training dataset {dataset!r} (training.dataset or "
                                     f"train_on) is not one of datasets {sorted(c['datasets'])}")
                if mask not in c["masks"]:
                    raise ValueError(f"config methods.{name}: training mask {mask!r} (training.mask or train_mask) "
                                     f"is not one of masks {sorted(c['masks'])}")
        for key in ("datasets", "masks"):
            for item in c["evaluation"][key]:
                if item not in c[key]:
                    raise ValueError(f"config evaluation.{key}: {item!r} is not one of {key} {sorted(c[key])}")
        for fam in (c.get("tuning") or {}).get("families", []):
            if fam not in families.names():
                raise ValueError(f"config tuning.families: {fam!r} is not a family {families.names()}")
        for key, name in zip(("dataset", "mask"), self.tuning_case()[:2]):
            if name not in c[f"{key}s"]:
                raise ValueError(f"config tuning.{key}: {name!r} is not one of {key}s {sorted(c[f'{key}s'])}")

    def _check_experiments(self) -> None:
        """Dataset, mask and variant names of the experiment blocks, and their own settings."""
        from .specs import AttackSpec

        pools = {"datasets": self.config["datasets"], "masks": self.config["masks"], "methods": self.methods}
        for name in ("attacks", "features", "pathology"):
            if name not in self.config:
                continue
            block = self.experiment(name)
            for key, pool in pools.items():
                for item in block[key]:
                    if item not in pool:
                        raise ValueError(f"config {name}.{key}: {item!r} is not one of {key} {sorted(pool)}")
            if name == "attacks" and (cannot := [m for m in block["methods"] if not self.attackable(m)]):
                raise ValueError(f"config attacks.methods: {cannot} offer no differentiable forward (forward, "
                                 "differentiable or attack in their class; docs/own_method.md)")
        _wrap("attacks", lambda: AttackSpec.from_config(self.attack_settings()["spec"]))
        self.attack_effort_settings()
        _wrap("features", self.feature_settings)
        if "pathology" in self.config:
            self.pathology_boxes()  # the file exists and every row is a box

    def _check_shifts(self) -> None:
        """Datasets, masks and variants the shift blocks name, and that trained variants learn from each shift's
        source (else 'in distribution' would not be)."""
        c = self.config
        for name, cfg in self.shift_pairs().items():
            where = f"config shifts.pairs.{name}"
            for key, pool in (("source", "datasets"), ("target", "datasets"), ("mask", "masks"),
                              ("target_mask", "masks")):
                if key not in cfg and key == "target":
                    raise ValueError(f"{where}: kind {cfg['kind']} needs a target dataset")
                if cfg[key] not in c[pool]:
                    raise ValueError(f"{where}.{key}: {cfg[key]!r} is not one of {pool} {sorted(c[pool])}")
            if cfg["kind"] == "filtered":
                for key in ("filter", "fraction"):
                    if key not in cfg:
                        raise ValueError(f"{where}: kind filtered needs {key!r}")
                if cfg["filter"] not in self.methods:
                    raise ValueError(f"{where}.filter: {cfg['filter']!r} is not one of methods {sorted(self.methods)}")
                if (cfg["target"], cfg["target_mask"]) != (cfg["source"], cfg["mask"]):
                    raise ValueError(f"{where}: kind filtered selects slices of its source; drop target/target_mask")
            else:
                for key in ("filter", "fraction"):
                    if key in cfg:
                        raise ValueError(f"{where}.{key}: only for kind filtered")
                if (cfg["target"], cfg["target_mask"]) == (cfg["source"], cfg["mask"]):
                    raise ValueError(f"{where}: target and target_mask equal the source and mask; nothing shifts")
            if name not in self.fitted_shifts():
                if cfg["kind"] == "filtered":
                    raise ValueError(f"{where}.fit: a filtered shift is only for the fit (TTT cannot adapt to it)")
                if name not in (c.get("ttt") or {}).get("shifts", []):
                    raise ValueError(f"{where}.fit: false leaves the shift out of the fit, and ttt.shifts does not "
                                     "name it either: nothing would use it")
                continue  # TTT trains its variants on this source itself (ttt_inputs); the fit's variants need not
            for method in [*self.evaluated_methods(), *([cfg["filter"]] if cfg["kind"] == "filtered" else [])]:
                if self.family(method).trained and self.training_of(method) != (cfg["source"], cfg["mask"]):
                    raise ValueError(
                        f"{where}: variant {method!r} learns from {self.training_of(method)} but the shift's source "
                        f"is ({cfg['source']!r}, {cfg['mask']!r}); set train_on/train_mask or the shift's source/mask")

    def _check_ttt(self) -> None:
        """The shifts TTT adapts to and which variants it can fine-tune."""
        if "ttt" not in self.config:
            return
        from .specs import TTTSpec

        pairs, block = self.shift_pairs(), self.config["ttt"]
        if not pairs:
            raise ValueError("config ttt: needs shifts.pairs to name the shifts it adapts to")
        for name in block["shifts"]:
            if name not in pairs:
                raise ValueError(f"config ttt.shifts: {name!r} is not one of shifts.pairs {sorted(pairs)}")
            if pairs[name]["kind"] == "filtered":
                raise ValueError(f"config ttt.shifts: {name!r} is a filtered shift; TTT needs a target set with its "
                                 "own training data (the Q->Q reference)")
        for method in block["methods"]:
            if method not in self.methods:
                raise ValueError(f"config ttt.methods: {method!r} is not one of methods {sorted(self.methods)}")
            fam = self.family(method)
            if not fam.trained or not fam.kspace_output(self.spec(method)):
                raise ValueError(f"config ttt.methods: {method!r} cannot be test-time trained; it needs a VarNet or a "
                                 "U-Net with input: complex (the self-supervised loss compares a k-space prediction)")
        lr = block.get("lr", {})
        if isinstance(lr, dict) and (unknown := sorted(set(lr) - set(families.STUDY_LR))):
            raise ValueError(f"config ttt.lr: {unknown} are not families test-time training adapts; expected some "
                             f"of {sorted(families.STUDY_LR)}")
        for name in block["shifts"]:
            spec = _wrap("ttt", lambda: TTTSpec.from_config(self.ttt_settings(name)["spec"]))
            if block.get("ablation_hidden", False) and spec.hide_holdout:
                raise ValueError("config ttt.ablation_hidden: the ablation hides the held-out points from the input, "
                                 "which ttt.hide_holdout: true already does for every run; set hide_holdout: false "
                                 "(the study's protocol) to compare the two")
            if spec.holdout_center:
                # a mask whose fully sampled centre is all it samples leaves no points to hold out
                mask_name = pairs[name]["target_mask"]
                m = self.config["masks"][mask_name]
                if float(m["center_fraction"]) * float(m["acceleration"]) >= 1:
                    raise ValueError(
                        f"config ttt.holdout_center: shift {name!r} adapts on mask {mask_name!r}, which samples only "
                        f"its centre (center_fraction {m['center_fraction']} x acceleration {m['acceleration']} >= 1), "
                        "so no points outside the centre can be held out; set ttt.holdout_center: false or use a "
                        "smaller center_fraction")

    def _check_plots(self) -> None:
        """Example variants and ε the experiments have. The colour maps are checked by the figure jobs
        (:func:`check_colormaps`): parsing the workflow imports no matplotlib."""
        c, plots = self.config, self.config["plots"]
        for name in plots.get("example_methods", []):
            if name not in self.methods:
                raise ValueError(f"config plots.example_methods: {name!r} is not one of methods {sorted(self.methods)}")
        for block in ("attacks", "features"):
            if block in c and "example_methods" in plots and not self.example_methods(block):
                raise ValueError(f"config plots.example_methods: none of {plots['example_methods']} is in {block}.methods")
        eps = plots.get("example_epsilon")
        if eps is not None and ("attacks" not in c or eps not in c["attacks"]["epsilons"]):
            raise ValueError(f"config plots.example_epsilon: {eps} is not one of attacks.epsilons "
                             f"{c.get('attacks', {}).get('epsilons', [])}")


def check_colormaps(plots: dict) -> None:
    """The config's plots.cmap and plots.error_cmap are colour maps matplotlib knows (the figure jobs call it
    before drawing; ValueError naming the field otherwise)."""
    import matplotlib

    for key in ("cmap", "error_cmap"):
        if plots[key] not in matplotlib.colormaps:
            raise ValueError(f"config plots.{key}: {plots[key]!r} is not a matplotlib colour map")

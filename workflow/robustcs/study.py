"""The study model: what a config means, with every default filled in once and every cross-check run once.

``Study.from_config(config)`` reads a config dict (as loaded from YAML), coerces YAML's exponent strings to
numbers, validates it against ``config/schema.yaml`` (filling the schema's defaults), fills the defaults the
schema cannot express (evaluated datasets and masks, each shift's masks, each experiment's datasets, masks
and variants) and runs every check that spans fields (names that must exist, variants' own settings against
their family's schema definition, without defaults filled in, and through its parser, which variant can be attacked, shifted or test-time trained). Each error is a
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

from . import configcheck, families
from .study_checks import check_study
from .study_checks import wrap as _wrap
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


def canonical(obj: Any) -> str:
    """A config block as canonical JSON for rule ``params:``, so that reordering keys in the config file does
    not count as a change (Snakemake reruns a job when its params' text changes)."""
    return json.dumps(obj, sort_keys=True)


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


def filled_config(config: dict, schema: str | Path = SCHEMA) -> dict:
    """A copy of ``config`` with YAML's exponent strings made numbers, validated against the schema, whose
    defaults it fills in (the one home of every setting's type, range and default), and the evaluated datasets and
    masks filled in (all, by default). A ValueError names the field and what was expected."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    filled, _ = coerce_numbers(copy.deepcopy(dict(config)))
    _check_names(filled)  # before the schema, whose own pattern check would only print a dump of itself
    if found := configcheck.non_finite(filled):
        raise ValueError(f"config {found[0]}: expected a finite number, got {found[1]!r}")
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
    return filled


class StudyVariants:
    """The study model's questions about its method variants (a base of :class:`Study`, which holds ``config``, the
    filled-in config, and ``_specs``, each variant's parsed settings)."""

    config: dict
    _specs: dict

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


class Study(StudyVariants):
    """One configured study (see the module docstring). ``config`` is the filled-in config dict."""

    def __init__(self, config: dict, schema: str | Path = SCHEMA):
        self.config = config
        self.schema = schema  # its per-family definitions check each variant's settings (study_checks)
        self._specs: dict[str, Any] = {}  # parsed once per variant: input functions ask for every job
        self._boxes: list | None = None  # the pathology annotation file, read once

    @classmethod
    def from_config(cls, config: dict, schema: str | Path = SCHEMA) -> "Study":
        """Coerce, validate (schema defaults filled in), complete and check ``config`` (not modified)."""
        study = cls(filled_config(config, schema), schema)
        study.check()
        return study

    # ---- variants the shifts leave out ------------------------------------------------------------------

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
        return block.get("dataset", dataset), block.get("mask", mask), block["split"], variants

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
        # an absent block (the rules are defined all the same) reads as the schema would fill an empty one
        given = self.config.get(name)
        block = dict(given) if given else configcheck.schema_block_defaults(self.schema, name)
        block.setdefault("datasets", list(self.config["evaluation"]["datasets"]))
        block.setdefault("masks", list(self.config["evaluation"]["masks"]))
        attackable = [m for m in self.evaluated_methods() if name != "attacks" or self.attackable(m)]
        block.setdefault("methods", attackable)  # the attacks leave out by default what cannot be attacked
        return block

    def attack_settings(self) -> dict:
        block = self.experiment("attacks")
        spec = {k: v for k, v in block.items() if k not in (*EXPERIMENT_KEYS, "save_perturbations", "effort")}
        return {"spec": spec, "slices": block["slices"], "save_perturbations": block["save_perturbations"]}

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
        return {"annotations": block["annotations"], "flip_vertical": block["flip_vertical"],
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
        shifts = self.config.get("shifts")
        return shifts["bootstrap"] if shifts else configcheck.schema_default(SCHEMA, "shifts", "bootstrap")

    def ttt_settings(self, shift: str) -> dict:
        """The TTT spec of one shift (robustcs.ttt.TTTSpec fields) and the slice count."""
        block = self.config["ttt"]
        # every setting spelt out, the schema's defaults included, so that a changed default reruns TTT jobs
        spec = {k: block[k] for k in ("max_steps", "holdout", "holdout_lines", "hide_holdout", "holdout_center",
                                           "precision")}
        # the study's rate of every family the config leaves out (a mapping of other keys fails the TTT check)
        lr = block.get("lr", {})
        spec["lr"] = {**families.STUDY_LR, **lr} if isinstance(lr, dict) else lr
        spec["window"] = block.get("window", TTT_WINDOW[self.shift_pairs()[shift]["kind"]])
        settings = {"spec": spec, "slices": block["slices"]}
        for key in ("reference_ttt", "ablation_hidden"):  # only when on: configs without them keep their jobs' params
            if block[key]:
                settings[key] = True
        return settings

    def example_methods(self, name: str) -> list[str]:
        """Variants shown in an experiment's example figure (config plots.example_methods, default all)."""
        chosen = self.config["plots"].get("example_methods")
        return [m for m in self.experiment(name)["methods"] if chosen is None or m in chosen]

    # ---- checks ----------------------------------------------------------------------------------------

    def check(self) -> None:
        """Every cross-field check (robustcs.study_checks), in the order a user would fix them."""
        check_study(self)


def check_colormaps(plots: dict) -> None:
    """The config's plots.cmap and plots.error_cmap are colour maps matplotlib knows (the figure jobs call it
    before drawing; ValueError naming the field otherwise)."""
    import matplotlib

    for key in ("cmap", "error_cmap"):
        if plots[key] not in matplotlib.colormaps:
            raise ValueError(f"config plots.{key}: {plots[key]!r} is not a matplotlib colour map")

# The robustness study of deep-learning MRI reconstruction (Darestani, Chaudhari, Heckel, ICML 2021;
# Darestani, Liu, Heckel, 2022) as one Snakemake workflow. Default config: the embedded demo study.
import os
import sys
from pathlib import Path

from snakemake.utils import min_version, update_config

min_version("9.0")


# The default study, found beside this Snakefile (so that `--directory elsewhere` runs the demo too). A
# --configfile given on the command line replaces it rather than merging into it (each config file is a complete
# study: the demo's datasets and variants must not leak into real.yaml); `--config key=value` overrides keys of
# whichever is in use, nested blocks key by key (Snakemake's own merge). config/README.md documents both.
DEFAULT_CONFIG = Path(workflow.basedir) / "config" / "config.yaml"
if not workflow.overwrite_configfiles:

    configfile: str(DEFAULT_CONFIG)


sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))
from robustcs.configcheck import check_files, typed_overrides
from robustcs.study import Study

# The config files given, re-read strictly: a key written twice in one block is refused (file, line, key named).
check_files(workflow.overwrite_configfiles or [DEFAULT_CONFIG])
# Nested --config values typed as in a config file (Snakemake leaves their scalars strings: '3', 'true').
update_config(config, typed_overrides(workflow.config_settings.config))
# The study model: the config validated against config/schema.yaml, every default filled in and every
# cross-check run, before any job (a bad config stops here with the field named). Rules ask STUDY.
STUDY = Study.from_config(config)
config.clear()
config.update(STUDY.config)

# Rule scripts import the workflow's library (workflow/robustcs) even where it is not pip-installed.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in [str(Path(workflow.basedir) / "workflow"), os.environ.get("PYTHONPATH", "")] if p
)


# Declared, so that executors that start jobs in a fresh environment pass it on (and for `snakemake --lint`).
envvars:
    "PYTHONPATH",


# Idle OpenMP threads of torch jobs sleep instead of spinning: with more jobs than cores, spinning
# threads made a ConvDecoder fit about 5x slower on 2 cores (measured on a shared machine).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/sensitivities.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/reconstruct.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/attack.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/shifts.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/plan.smk"


report: "workflow/report/workflow.rst"


# Rules that only read summary tables or a few result files (all, download, summarise_*, plot_*, readme, plan) carry
# `localrule: True` in their rule files: on a cluster they run beside Snakemake instead of each waiting in the
# queue for an allocation of its own (tests/test_slurm.py checks they are not submitted).
rule all:
    default_target: True
    input:
        data_targets(),  # listed here, not only in study_targets: every dataset's ingest is scheduled at once
        table_targets(),
        study_targets,
        intermediate_targets,  # a deleted or failed intermediate is remade (rules/inputs/report.smk)
        paths.table("runtime.csv"),
    localrule: True

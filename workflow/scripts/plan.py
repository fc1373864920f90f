"""Rule plan: every job the study will run and the hours its runtime limits allow, before any data are ingested
(``robustcs.plan``); the table goes to the console, results/plan/plan.md and plan.csv."""

import csv
import shutil
import sys
from pathlib import Path

import yaml

from robustcs import plan
from robustcs.util import script_logger

log = script_logger(snakemake.log[0])
out = Path("results/plan")
scratch = out / "scratch"
shutil.rmtree(scratch, ignore_errors=True)  # a fresh prediction every time
scratch.mkdir(parents=True)
config = dict(snakemake.config)
pending = plan.write_scratch(config, scratch, Path.cwd())
(scratch / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
exe = Path(sys.executable).with_name("snakemake")
text = plan.dry_run(str(exe) if exe.exists() else "snakemake", snakemake.params.snakefile, scratch / "config.yaml",
                    scratch, snakemake.threads)
rows = plan.table(plan.parse_dry_run(text), pending, config)
with open(out / "plan.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=["rule", "jobs", "limit_h", "gpu_h"])
    writer.writeheader()
    writer.writerows({**r, "limit_h": round(r["limit_h"], 3), "gpu_h": round(r["gpu_h"], 3)} for r in rows)
(out / "plan.md").write_text(plan.markdown(rows))
shutil.rmtree(scratch, ignore_errors=True)
total = rows[-1]
log.info("plan: %d jobs (%d datasets still to ingest), %.1f GPU-hours at most (runtime limits x GPUs); per rule "
         "in %s:\n%s", total["jobs"], len(pending), total["gpu_h"], out / "plan.md", plan.markdown(rows))

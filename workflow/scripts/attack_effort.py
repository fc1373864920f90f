"""Rule attack_effort: one attacked variant attacked again at the largest ε with the base steps and factor × them
(config attacks.effort), on the central slice of each of the first test files, with the main attack's slice
seeds and starts; each perturbation scored from scratch (robustcs.attack_effort.effort_rows). Writes one row
per (steps, slice)."""

import pandas as pd

from robustcs import params as decode
from robustcs.attack_effort import effort_rows
from robustcs.methods import load_method
from robustcs.recon_io import iter_slices, maps_index
from robustcs.util import TqdmToLogger, atomic_path, script_logger, stable_seed, torch_setup

log = script_logger(snakemake.log[0])
device = torch_setup(snakemake.threads, log)
inp, out, w, params = snakemake.input, snakemake.output, snakemake.wildcards, snakemake.params
plan = decode.attack(params.attack)  # the main attack's settings: the same schedule, step size, start and batch
effort = decode.plain(params.effort)  # {slices, factors}: Study.attack_effort_settings
method = load_method(w.method, params.spec, device, model_path=inp.get("model"), seed=params.seed)
maps = maps_index(list(inp.sens)) if "sens" in inp.keys() else {}
if maps and (missing := [stem for stem in params.stems if stem not in maps]):
    raise ValueError(f"no ESPIRiT maps for {missing} in {list(inp.sens)}")

# one central slice per file: the middle one of the main attack's attacks.slices central slices
items = [item for stem in params.stems
         for item in iter_slices(inp.manifest, stem, None, inp.masks, maps.get(stem), count=1)]
if not items:
    raise ValueError(f"no test slices for the attack-effort check of {w.method} (stems {params.stems})")
seeds = [stable_seed(params.seed, "attack", w.method, item.stem, item.slice) for item in items]  # as rule attack's
rows = effort_rows(method, items, plan.spec, effort["factors"], seeds, TqdmToLogger(log), log)
table = pd.DataFrame([{"dataset": w.dataset, "mask": w.mask, **row} for row in rows])
with atomic_path(out.csv, suffix=".csv") as tmp:
    table.to_csv(tmp, index=False)
means = table.groupby("steps")["psnr_drop"].mean()
log.info("%s: mean PSNR drop at ε %g over %d slices: %s", w.method, max(plan.spec.epsilons), len(items),
         ", ".join(f"{drop:.2f} dB at {steps} steps" for steps, drop in means.items()))

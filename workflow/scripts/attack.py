"""Rule attack: adversarial and random perturbations of the central test slices of every volume of a part, for
one method variant at every ε (every slice of the part in one attack: robustcs.attacks.attack_slices); writes
the reconstructions (h5, a group per volume) and their per-slice metrics (csv)."""

import h5py
import pandas as pd

from robustcs import params as decode
from robustcs.attacks import attack_slices, plateau_rise
from robustcs.methods import load_method
from robustcs.metrics import slice_metrics
from robustcs.recon_io import job_slices, write_attrs
from robustcs.result_files import write_attack
from robustcs.util import TqdmToLogger, atomic_path, script_logger, stable_seed, torch_setup

log = script_logger(snakemake.log[0])
device = torch_setup(snakemake.threads, log)
inp, out, w, params = snakemake.input, snakemake.output, snakemake.wildcards, snakemake.params
spec, slice_count, save_perturbations = decode.attack(params.attack)
method = load_method(w.method, params.spec, device, model_path=inp.get("model"), seed=params.seed)
progress = TqdmToLogger(log)


def attack_file(stem: str, group: h5py.Group, items: list, results: list) -> list[dict]:
    """One volume's attacked slices: its arrays go to ``group``, its metric rows are returned."""
    rows = []
    for item, res in zip(items, results):
        base = {"dataset": w.dataset, "mask": w.mask, "method": w.method, "family": method.family,
                "stem": item.stem, "slice": item.slice}
        clean = slice_metrics(item.target, res.clean, item.maxval)
        rows.append({**base, "epsilon": 0.0, "kind": "clean", **clean, "norm": 0.0, "budget": 0.0,
                     "plateau_rise": float("nan"), "rise_second_half": float("nan")})
        for i, eps in enumerate(spec.epsilons):
            ssim = {}
            rise = plateau_rise(res.losses[i])
            rise_half = plateau_rise(res.losses[i], tail=0.5)
            for kind, recon in (("adversarial", res.adversarial[i]), ("random", res.random[i])):
                metrics = slice_metrics(item.target, recon, item.maxval)
                rows.append({**base, "epsilon": eps, "kind": kind, **metrics, "norm": res.norms[i],
                             "budget": res.budgets[i], "plateau_rise": rise if kind == "adversarial" else float("nan"),
                             "rise_second_half": rise_half if kind == "adversarial" else float("nan")})
                ssim[kind] = metrics["ssim"]
            log.info("%s[%d] eps %g: |e| / budget %.4f; attack loss rose %.2f %% in the last 10 %% of %d steps; "
                     "SSIM clean %.4f, adversarial %.4f, random %.4f", item.stem, item.slice, eps,
                     res.norms[i] / res.budgets[i], 100 * rise, spec.steps, clean["ssim"], ssim["adversarial"],
                     ssim["random"])
    write_attack(group, spec.epsilons, [item.slice for item in items], results, save_perturbations)
    return rows


# every slice of the part at once: a method that batches slices attacks them together (attacks.attack_slices)
items = {stem: list(job_slices(inp, stem, count=slice_count)) for stem in params.stems}
if empty := [stem for stem in params.stems if not items[stem]]:
    raise ValueError(f"{', '.join(empty)}: no slices to attack (manifest {inp.manifest})")
flat = [item for stem in params.stems for item in items[stem]]
found = attack_slices(method, flat, spec,
                      [stable_seed(params.seed, "attack", w.method, item.stem, item.slice) for item in flat], progress)
rows, first = [], 0
with atomic_path(out.h5, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
    for stem in params.stems:
        count = len(items[stem])
        rows += attack_file(stem, f.create_group(stem), items[stem], found[first : first + count])
        first += count
    write_attrs(f, {**method.attrs(), "attack": spec.as_dict()})
with atomic_path(out.csv, suffix=".csv") as tmp:
    pd.DataFrame(rows).to_csv(tmp, index=False)

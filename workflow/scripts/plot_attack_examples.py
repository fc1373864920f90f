"""Rule plot_attack_examples: one attacked test slice (first dataset, mask and test volume of the attacks
block, its first attacked slice): the ground truth and every attacked variant's clean and attacked
reconstruction with error maps, on shared colour scales."""

from pathlib import Path

import h5py

from robustcs import params as decode
from robustcs.fastmri_io import DataValidationError
from robustcs.families import variant_label
from robustcs.metrics import magnitude_crop
from robustcs.plots import adversarial_examples, save
from robustcs.result_files import read_attack
from robustcs.study import check_colormaps
from robustcs.util import open_h5, script_logger

log = script_logger(snakemake.log[0])
inp, params = snakemake.input, snakemake.params
plots = decode.plain(params.plots)
check_colormaps(plots)
dataset, mask, stem = params.case

rows, slice_index, epsilons = [], None, None
for path in inp.recons:
    method = Path(path).parent.name
    with open_h5(path) as part:
        found = read_attack(part, stem, path)
        label = variant_label(method, str(part.attrs.get("family", "")))  # the display name
    slices, eps = found.slices.tolist(), found.epsilons.tolist()
    if slice_index is None:
        slice_index, epsilons = slices[0], eps
        wanted = plots.get("example_epsilon", max(epsilons))
        if wanted not in epsilons:
            raise ValueError(f"config plots.example_epsilon: {wanted} is not an attacked ε {epsilons}")
        k = epsilons.index(wanted)
    if slices[0] != slice_index or eps != epsilons:
        raise DataValidationError(path, "slices/epsilons", f"expected slice {slice_index} and ε {epsilons} "
                                  f"like {inp.recons[0]}, found {slices[0]} and {eps}")
    rows.append((label, found.clean[0], found.adversarial[k, 0]))
with h5py.File(inp.volume, "r") as f:
    reference = f["reconstruction_rss"][slice_index]
rows = [(m, magnitude_crop(c, reference.shape), magnitude_crop(a, reference.shape)) for m, c, a in rows]
fig = adversarial_examples(reference, rows, epsilons[k], error_max=plots["error_max"], cmap=plots["cmap"],
                           error_cmap=plots["error_cmap"], title=f"{dataset}, {mask}: {stem} slice {slice_index}")
save(fig, *snakemake.output, dpi=plots["dpi"])
log.info("%s slice %d, ε %g, %d variants: wrote %s", stem, slice_index, epsilons[k], len(rows), ", ".join(snakemake.output))

"""Rule plot_feature_examples: one featured test slice (first dataset, mask and test volume of the
features block, its first featured slice): the truth with and without the features and every variant's
reconstruction with its error map and a zoom on the features, on shared colour scales."""

from pathlib import Path

from robustcs import params as decode
from robustcs.fastmri_io import DataValidationError
from robustcs.families import variant_label
from robustcs.features import Feature
from robustcs.plots import feature_examples, save
from robustcs.result_files import read_featured
from robustcs.study import check_colormaps
from robustcs.util import open_h5, script_logger

log = script_logger(snakemake.log[0])
inp, params = snakemake.input, snakemake.params
plots = decode.plain(params.plots)
check_colormaps(plots)
dataset, mask, stem = params.case

with open_h5(inp.featured) as part:
    data = read_featured(part, stem, inp.featured, kspace=False)
slice_index = int(data.slices[0])
featured, original = data.target[0], data.original[0]
features = [Feature(**d) for d in data.features[0]]
rows = []
for path in inp.recons:
    with open_h5(path) as part:
        if stem not in part:
            raise DataValidationError(path, stem, "no reconstructions of the example file")
        f = part[stem]
        if int(f["slices"][0]) != slice_index:
            raise DataValidationError(path, "slices", f"expected slice {slice_index} first like {inp.featured}")
        label = variant_label(Path(path).parent.name, str(part.attrs.get("family", "")))  # the display name
        rows.append((label, f["reconstruction"][0]))
fig = feature_examples(featured, original, rows, features, error_max=plots["error_max"], cmap=plots["cmap"],
                       error_cmap=plots["error_cmap"], title=f"{dataset}, {mask}: {stem} slice {slice_index}")
save(fig, *snakemake.output, dpi=plots["dpi"])
log.info("%s slice %d, %d features, %d variants: wrote %s", stem, slice_index, len(features), len(rows),
         ", ".join(snakemake.output))

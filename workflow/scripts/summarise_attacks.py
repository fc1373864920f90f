"""Rule summarise_attacks: quality vs ε per method variant (adversarial and random; PSNR and NMSE per volume
over its attacked slices), and the drops from clean quality on the same slices (per slice) with the attacks'
convergence, as CSV and Markdown."""

from robustcs.tables import PER_SLICE_NOTE, attack_drops, frame_markdown, summarise, to_markdown
from robustcs.util import atomic_path, read_result_csvs, script_logger

log = script_logger(snakemake.log[0])
per_slice = read_result_csvs(snakemake.input)
over = per_slice["norm"] > per_slice["budget"] * (1 + 1e-5)
if over.any():
    raise ValueError(f"perturbations over their budget: {per_slice.loc[over, ['method', 'stem', 'slice', 'epsilon']]}")
summary = summarise(per_slice, ["dataset", "mask", "family", "method", "epsilon", "kind"])
with atomic_path(snakemake.output.csv, suffix=".csv") as tmp:
    summary.to_csv(tmp, index=False)
with atomic_path(snakemake.output.md, suffix=".md") as tmp:
    tmp.write_text(to_markdown(summary) + "\n")
drops = attack_drops(per_slice)
with atomic_path(snakemake.output.drops, suffix=".csv") as tmp:
    drops.to_csv(tmp, index=False)
with atomic_path(snakemake.output.drops_md, suffix=".md") as tmp:
    tmp.write_text(frame_markdown(drops, digits=3) + "\n\n" + PER_SLICE_NOTE + "\n")
unconverged = drops[drops["share_converged"] < 1]
if not unconverged.empty:
    log.warning("attacks still rising by >= 1 %% in their last 10 %% of steps: %s",
                ", ".join(f"{r.method} eps {r.epsilon:g} ({100 * r.plateau_rise_max:.1f} %)" for r in unconverged.itertuples()))
log.info("attack summary: %d slices, %d rows", per_slice[["stem", "slice"]].drop_duplicates().shape[0], len(summary))

"""Rule summarise_attack_verdicts: per attacked variant, at the study's ε (else the largest), the attack's PSNR and
SSIM drop beyond random noise of the same norm and its relative PSNR drop against ℓ1's, with volume-bootstrap
intervals and the verdicts the findings table decides on (robustcs.attack_stats), as CSV and Markdown."""


from robustcs.attack_stats import attack_verdicts, verdicts_markdown
from robustcs.util import read_result_csvs, script_logger, write_table

log = script_logger(snakemake.log[0])
params = snakemake.params
per_slice = read_result_csvs(snakemake.input)
table = attack_verdicts(per_slice, margin_db=float(params.margin_db), comparison_margin=float(params.comparison_margin),
                        min_volumes=int(params.min_volumes), seed=int(params.seed))
write_table(table, snakemake.output.csv, snakemake.output.md, verdicts_markdown(table))
for row in table.itertuples(index=False):
    log.info("%s/%s %s at eps %g: attack - noise %.2f dB [%.2f, %.2f], vulnerable %s; relative drop %.3f, vs l1 %s",
             row.dataset, row.mask, row.method, row.epsilon, row.psnr_excess, row.psnr_excess_low,
             row.psnr_excess_high, row.vulnerable, row.relative_drop, row.comparison)

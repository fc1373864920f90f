"""Rule readme: the run's findings and headline tables and linear-fit figure into docs/demo/ and into the README's
block between ``<!-- headline:begin -->`` and ``<!-- headline:end -->`` (rewritten atomically)."""

import shutil
from pathlib import Path

from robustcs.util import atomic_path, replace_marked_block, script_logger

log = script_logger(snakemake.log[0])
inp, out = snakemake.input, snakemake.output
readme = Path(snakemake.params.readme)
if not readme.is_file():
    raise FileNotFoundError(f"{readme.resolve()}: no README to update (run the readme target in the checkout)")
table = Path(inp.headline).read_text()
findings = Path(inp.findings).read_text()
block = (f"The papers' findings on this run (`results/tables/findings.md`):\n\n{findings.strip()}\n\n"
         f"Per variant (`results/tables/headline.md`):\n\n{table.strip()}\n\n"
         f"![In- vs out-of-distribution SSIM of every variant with the linear fits]({Path(out.figure).as_posix()})")
text = replace_marked_block(readme.read_text(), "headline", block, source=str(readme))  # fails before any write
with atomic_path(out.table, suffix=".md") as tmp:
    tmp.write_text(table)
with atomic_path(out.findings, suffix=".md") as tmp:
    tmp.write_text(findings)
with atomic_path(out.figure, suffix=".png") as tmp:
    shutil.copyfile(inp.shifts, tmp)
with atomic_path(readme, suffix=".md") as tmp:
    tmp.write_text(text)
log.info("updated %s, %s and %s", readme, out.table, out.figure)

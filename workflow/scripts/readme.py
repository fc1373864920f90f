"""Rule readme: the run's findings and headline tables and linear-fit figure into a README block
(``robustcs.readme``); logs the files it changed (the log also goes to the console)."""

from robustcs.readme import update
from robustcs.util import script_logger

log = script_logger(snakemake.log[0])
inp, out = snakemake.input, snakemake.output
changed = update(inp.headline, inp.findings, inp.shifts, dict(out.items()), snakemake.params.readme,
                 create=snakemake.params.create)
message = f"readme: changed {', '.join(changed)}" if changed else "readme: every file already up to date"
log.info(message)  # on the console too

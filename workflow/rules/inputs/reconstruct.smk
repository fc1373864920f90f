# Input functions and settings for rules/reconstruct.smk, included at its top: Snakemake's lint asks that no file
# define both functions and rules.


def recon_minutes(wildcards):
    """The variant's family's runtime limit (minutes): the job's `runtime`, and its `priority` (longest first)."""
    return STUDY.minutes("reconstruct", wildcards.method)

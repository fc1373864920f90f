# `snakemake --cores 1 plan`: every job of the study and the hours its runtime limits allow, before any data are
# ingested (a dry run stops at the ingest checkpoint). Never part of `all`; no output: it runs each time asked.


rule plan:
    log:
        paths.log("plan"),
    localrule: True
    conda:
        "../../envs/recon.yaml"
    params:
        snakefile=workflow.main_snakefile,
    script:
        "../scripts/plan.py"

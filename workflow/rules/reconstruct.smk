# Reconstruction with every method variant: one file per (dataset, mask, variant, part of a split), one HDF5 group
# per volume of the part (compute.volumes_per_job).

include: "inputs/reconstruct.smk"


rule reconstruct:
    input:
        unpack(method_inputs),
    output:
        h5=paths.RECON,
        csv=paths.RECON_SCORES,
    wildcard_constraints:
        method=STUDY.method_regex(),
    params:
        spec=method_spec,
        seed=method_seed,
        stems=part_stems,
    log:
        "results/logs/reconstruct/{dataset}/{mask}/{method}/{part}.log",
    benchmark:
        "results/benchmarks/reconstruct/{dataset}/{mask}/{method}/{part}.tsv",
    threads: config["compute"]["threads"]
    priority: recon_minutes  # longest first: none left to run alone at the end
    resources:
        mem_mb=4000,
        runtime=recon_minutes,
        gpu=method_gpus,
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/reconstruct.py"

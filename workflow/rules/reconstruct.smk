# Reconstruction with every method variant: one file per (dataset, mask, variant, part of a split), one HDF5 group
# per volume of the part (compute.volumes_per_job).


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
    priority: lambda w: STUDY.family(w.method).recon_minutes  # longest first
    resources:
        mem_mb=4000,
        runtime=lambda w: STUDY.family(w.method).recon_minutes,
        gpu=method_gpus,
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/reconstruct.py"

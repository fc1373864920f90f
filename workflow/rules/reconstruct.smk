# Reconstruction with every method variant: one file per (dataset, mask, variant, part of a split), one HDF5 group
# per volume of the part (compute.volumes_per_job).


include: "inputs/reconstruct.smk"


rule reconstruct:
    input:
        unpack(method_inputs),
    output:
        h5=paths.RECON,
        csv=paths.RECON_SCORES,
    log:
        paths.log("reconstruct", "{dataset}/{mask}/{method}/{part}"),
    benchmark:
        paths.benchmark("reconstruct", "{dataset}/{mask}/{method}/{part}")
    wildcard_constraints:
        method=STUDY.method_regex(),
    priority: recon_minutes  # longest first: none left to run alone at the end
    conda:
        "../../envs/recon.yaml"
    threads: config["compute"]["threads"]
    resources:
        mem_mb=4000,
        runtime=recon_minutes,
        gpu=method_gpus,
    params:
        spec=method_spec,
        seed=method_seed,
        stems=part_stems,
    script:
        "../scripts/reconstruct.py"

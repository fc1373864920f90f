# ESPIRiT coil sensitivities per file and mask, from the undersampled k-space's sampled centre; one job per part
# of a split (compute.volumes_per_job files), one HDF5 group per file.


rule sensitivities:
    input:
        volumes=part_volumes,
        manifest=paths.MANIFEST,
        masks=paths.MASK,
    output:
        paths.SENS,
    log:
        "results/logs/sensitivities/{dataset}/{mask}/{part}.log",
    benchmark:
        "results/benchmarks/sensitivities/{dataset}/{mask}/{part}.tsv"
    conda:
        "../../envs/recon.yaml"
    threads: config["compute"]["threads"]
    resources:
        mem_mb=4000,
        runtime=STUDY.minutes("sensitivities"),
    params:
        espirit=canonical(config["sensitivities"]["espirit"]),
        stems=part_stems,
    script:
        "../scripts/sensitivities.py"

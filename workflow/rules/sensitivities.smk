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
        paths.log("sensitivities", "{dataset}/{mask}/{part}"),
    benchmark:
        paths.benchmark("sensitivities", "{dataset}/{mask}/{part}")
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

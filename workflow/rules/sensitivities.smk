# ESPIRiT coil sensitivities per file and mask, from the undersampled k-space's sampled centre.


rule sensitivities:
    input:
        volume=volume_path,
        manifest=paths.MANIFEST,
        masks=paths.MASK,
    output:
        paths.SENS,
    params:
        espirit=canonical(config["sensitivities"]["espirit"]),
    log:
        "results/logs/sensitivities/{dataset}/{mask}/{stem}.log",
    benchmark:
        "results/benchmarks/sensitivities/{dataset}/{mask}/{stem}.tsv",
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/sensitivities.py"

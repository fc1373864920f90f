# Reconstruction with every method variant: one file per (dataset, mask, variant, volume).


rule reconstruct:
    input:
        unpack(method_inputs),
    output:
        "results/recon/{dataset}/{mask}/{method}/{stem}.h5",
    wildcard_constraints:
        method=method_regex(*FAMILIES),
    params:
        spec=method_spec,
        seed=method_seed,
    log:
        "results/logs/reconstruct/{dataset}/{mask}/{method}/{stem}.log",
    benchmark:
        "results/benchmarks/reconstruct/{dataset}/{mask}/{method}/{stem}.tsv",
    threads: config["compute"]["threads"]
    resources:
        mem_mb=4000,
        runtime=method_runtime,
        gpu=method_gpus,
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/reconstruct.py"

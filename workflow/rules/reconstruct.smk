# Reconstruction with every method variant: one file per (dataset, mask, variant, volume).


rule reconstruct:
    input:
        unpack(method_inputs),
    output:
        paths.RECON,
    wildcard_constraints:
        method=STUDY.method_regex(),
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
        runtime=lambda w: STUDY.family(w.method).recon_minutes,
        gpu=method_gpus,
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/reconstruct.py"

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
    threads: config["compute"]["threads"]
    resources:
        mem_mb=4000,
        runtime=lambda w: {"convdecoder": 240, "l1": 60}.get(method_family(w.method), 30),
        gpu=method_gpus,
    conda:
        "../../envs/recon.yaml"
    script:
        "../scripts/reconstruct.py"

# Data stage: downloads (checksummed, resumable), then one validated manifest per dataset.


include: "inputs/data.smk"


rule download:
    output:
        paths.DOWNLOAD,
    log:
        paths.log("download", "{dataset}/{archive}"),
    benchmark:
        paths.benchmark("download", "{dataset}/{archive}")
    localrule: True  # compute nodes often have no internet; the login node fetches (resumable, checksummed)
    conda:
        "../../envs/data.yaml"
    resources:
        runtime=STUDY.minutes("download"),
    params:
        url=lambda w: archives(w.dataset)[w.archive]["url"],
        sha256=lambda w: archives(w.dataset)[w.archive]["sha256"],
    script:
        "../scripts/download.py"


checkpoint ingest:
    input:
        archive_targets,
    output:
        paths.MANIFEST,
    log:
        paths.log("ingest", "{dataset}"),
    benchmark:
        paths.benchmark("ingest", "{dataset}")
    conda:
        "../../envs/data.yaml"
    threads: config["compute"]["threads"]  # files converted and validated in parallel, one process each
    resources:
        mem_mb=lambda w, threads: 4000 * threads,  # each worker holds one volume (a Stanford 3D one: GBs)
        runtime=STUDY.minutes("ingest"),
    params:
        cfg=dataset_cfg,
        seed=config["seed"],
        # the files in its folders (name, size, time): one added, removed or replaced reruns the ingest, and with
        # it every job that reads the dataset's manifest
        listing=lambda w: folder_listing(config["datasets"][w.dataset]),
    script:
        "../scripts/ingest.py"


rule masks:
    input:
        paths.MANIFEST,
    output:
        paths.MASK,
    log:
        paths.log("masks", "{dataset}/{mask}"),
    benchmark:
        paths.benchmark("masks", "{dataset}/{mask}")
    conda:
        "../../envs/data.yaml"
    resources:
        runtime=STUDY.minutes("masks"),
    params:
        spec=lambda w: canonical(config["masks"][w.mask]),
        seed=config["seed"],
    script:
        "../scripts/masks.py"

# Rules of the train stage: see workflow/detflow/train.py.
# Snapshots and TensorBoard logs are working folders, not outputs: Snakemake
# deletes the outputs of a failed job, and a resumed run needs them.


rule train:
    input:
        splits=expand("results/voc/ImageSets/Main/{split}.txt", split=("train", "val")),
        images="results/voc/JPEGImages",
        annotations="results/voc/Annotations",
        classes="results/voc/classes.json",
        weights=training_weights(),
        code=stage_code("train"),
    output:
        metrics=report("results/training/metrics.csv", category="Training"),
        summary="results/training/training.json",
    log:
        "logs/train/train.log",
    benchmark:
        "benchmarks/train/train.tsv"
    conda:
        "../envs/training.yaml"
    threads: config["train"]["threads"]
    resources:
        gpu=1,
        mem_mb=config["train"]["mem_mb"],
        runtime=config["train"]["runtime"],
    params:
        snapshots="results/training/snapshots",
        tensorboard="results/training/tensorboard",
        options=training_options(),
    shell:
        "python -m detflow.train results/voc --metrics {output.metrics:q} --summary {output.summary:q}"
        " --snapshots {params.snapshots:q} --tensorboard {params.tensorboard:q} --threads {threads}"
        " {params.options} > {log:q} 2>&1"

# Rules of the train stage: see workflow/detflow/train.py.
# Snapshots and TensorBoard logs are working folders, not outputs: Snakemake
# deletes the outputs of a failed job, and a resumed run needs them.
# Training depends on exactly what it reads: the content manifest of the train and val
# annotations and frames (workflow/detflow/training_inputs.py). The VOC tree is marked
# ancient: a rerun of the dataset stage for a test video's labels does not retrain.


rule training_inputs:
    input:
        annotations=training_annotation_files,
        frames=expand("results/frames/{video}", video=training_videos()),
        code=stage_code("training_inputs"),
    output:
        manifest="results/voc/training_inputs.json",
    log:
        "logs/training_inputs/training_inputs.log",
    conda:
        "../envs/video.yaml"
    params:
        settings=json.dumps(
            {"classes": config["classes"], "dataset": config["dataset"], "split": config["split"]},
            sort_keys=True,
        ),
    shell:
        "python -m detflow.training_inputs {output.manifest:q} --annotations {input.annotations:q}"
        " --frame-dirs {input.frames:q} --settings {params.settings:q} > {log:q} 2>&1"


rule train:
    input:
        manifest="results/voc/training_inputs.json",
        splits=ancient(expand("results/voc/ImageSets/Main/{split}.txt", split=("train", "val"))),
        images=ancient("results/voc/JPEGImages"),
        annotations=ancient("results/voc/Annotations"),
        classes=ancient("results/voc/classes.json"),
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

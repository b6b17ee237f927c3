# Rules of the train stage: see workflow/detflow/train.py.
# Snapshots and TensorBoard logs are working folders, not outputs: Snakemake
# deletes the outputs of a failed job, and a resumed run needs them.
# Each variant of train.variants is its own training job, in results/training/<variant>/, asking one GPU:
# --cores and --resources gpu=N (or the cluster) decide how many run at once.
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


rule imagenet_weights:
    input:
        code=stage_code("weights"),
    output:
        weights="resources/weights/{backbone}_imagenet.h5",
    log:
        "logs/imagenet_weights/{backbone}.log",
    conda:
        "../envs/training.yaml"
    params:
        options=cli_options(config["weights"]),
    shell:
        "python -m detflow.weights {wildcards.backbone:q} {output.weights:q} {params.options} > {log:q} 2>&1"


rule train:
    input:
        manifest="results/voc/training_inputs.json",
        splits=ancient(expand("results/voc/ImageSets/Main/{split}.txt", split=("train", "val"))),
        images=ancient("results/voc/JPEGImages"),
        annotations=ancient("results/voc/Annotations"),
        classes=ancient("results/voc/classes.json"),
        weights=training_weights,
        code=stage_code("train"),
    output:
        metrics=report("results/training/{variant}/metrics.csv", category="Training", labels={"variant": "{variant}"}),
        summary="results/training/{variant}/training.json",
    log:
        "logs/train/{variant}.log",
    benchmark:
        "benchmarks/train/{variant}.tsv"
    conda:
        "../envs/training.yaml"
    threads: training_resource("threads")
    resources:
        gpu=1,
        mem_mb=training_resource("mem_mb"),
        runtime=training_resource("runtime"),
    params:
        snapshots="results/training/{variant}/snapshots",
        tensorboard="results/training/{variant}/tensorboard",
        options=training_options,
    shell:
        "python -m detflow.train results/voc --metrics {output.metrics:q} --summary {output.summary:q}"
        " --snapshots {params.snapshots:q} --tensorboard {params.tensorboard:q} --threads {threads}"
        " {params.options} > {log:q} 2>&1"

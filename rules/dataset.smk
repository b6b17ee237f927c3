# Rules of the dataset stage: see workflow/detflow/dataset.py.


rule dataset:
    input:
        frames=all_frame_dirs(),
        selections=all_selections(),
        annotations=annotation_files,
        labelimg="results/labelling/labelimg.txt",
        code=stage_code("dataset"),
    output:
        images=directory("results/voc/JPEGImages"),
        annotations=directory("results/voc/Annotations"),
        classes="results/voc/classes.json",
        table="results/voc/images.csv",
        validation="results/voc/validation.json",
        readable=report("results/voc/validation.txt", category="Dataset"),
    log:
        "logs/dataset/dataset.log",
    benchmark:
        "benchmarks/dataset/dataset.tsv"
    conda:
        "../envs/video.yaml"
    params:
        annotations=annotations_dir(),
        classes=cli_options({"classes": config["classes"]}),
        options=cli_options(config["dataset"]),
    shell:
        "python -m detflow.dataset {params.annotations:q} results/voc --images {input.frames:q}"
        " --selections {input.selections:q} --labelimg-command-file {input.labelimg:q}"
        " {params.classes} {params.options} > {log:q} 2>&1"

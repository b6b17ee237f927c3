# Rules of the Label Studio round trip: see workflow/detflow/label_studio.py.
# Targets (not part of `rule all`): `snakemake label_studio` (the labelling
# configuration and the tasks of the chosen frames not labelled yet; no model
# needed) and `snakemake label_studio_drafts` (the same tasks with the model's
# boxes as predictions). Sending them to a running Label Studio, and its
# export back into the annotations folder, are commands of their own (README,
# "Labelling with Label Studio"). Both jobs use the training environment: the
# stage's module also runs the model.


rule label_studio_tasks:
    input:
        selections=all_selections(),
        images="results/labelling/images",
        annotations=annotation_files,
        code=stage_code("label_studio"),
    output:
        config="results/label_studio/config.xml",
        tasks="results/label_studio/tasks.json",
    log:
        "logs/label_studio/tasks.log",
    conda:
        "../envs/training.yaml"
    params:
        annotations=annotations_dir(),
        classes=",".join(config["classes"]),
        root=config["label_studio"]["document_root"] or ".",
    shell:
        "python -m detflow.label_studio tasks --selections {input.selections:q} --images-dir {input.images:q}"
        " --annotations-dir {params.annotations:q} --document-root {params.root:q} --classes {params.classes:q}"
        " --config-out {output.config:q} --tasks-out {output.tasks:q} > {log:q} 2>&1"


rule label_studio_drafts:
    default_target: False
    input:
        config="results/label_studio/config.xml",
        selections=all_selections(),
        images="results/labelling/images",
        annotations=annotation_files,
        code=stage_code("label_studio"),
    log:
        "logs/label_studio/tasks_with_drafts.log",
    conda:
        "../envs/training.yaml"
    threads: 2
    params:
        model=draft_model,
        annotations=annotations_dir(),
        classes=",".join(config["classes"]),
        root=config["label_studio"]["document_root"] or ".",
        options=cli_options(config["prelabel"]),
        batch=section_options("predict", "batch_size"),
    shell:
        "python -m detflow.label_studio tasks --selections {input.selections:q} --images-dir {input.images:q}"
        " --annotations-dir {params.annotations:q} --document-root {params.root:q} --classes {params.classes:q}"
        " --tasks-out results/label_studio/tasks_with_drafts.json --model {params.model:q}"
        " --class-names {params.classes:q} {params.options} {params.batch} --threads {threads} > {log:q} 2>&1"


rule label_studio:
    default_target: False
    input:
        "results/label_studio/config.xml",
        "results/label_studio/tasks.json",

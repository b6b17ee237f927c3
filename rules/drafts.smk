# Rules of the drafts stage: see workflow/detflow/drafts.py. Target:
# `snakemake drafts`. The drafts in results/drafts/ are not declared outputs:
# Snakemake would delete them before a rerun, and drafts are never replaced.


rule drafts:
    default_target: False
    input:
        model="results/model/inference.h5",
        classes="results/voc/classes.json",
        selections=all_selections(),
        frames=all_frame_dirs(),
        labelimg="results/labelling/labelimg.txt",
        annotations=annotation_files,
        code=stage_code("drafts"),
    output:
        manifest="results/drafts/drafts.csv",
    log:
        "logs/drafts/drafts.log",
    conda:
        "../envs/training.yaml"
    threads: 2
    params:
        annotations=annotations_dir(),
        options=cli_options(config["prelabel"]),
        batch=section_options("predict", "batch_size"),
    shell:
        # stdout (what to do with the drafts) goes to the terminal, the log to the log file.
        "python -m detflow.drafts {input.model:q} --selections {input.selections:q} --frame-dirs {input.frames:q}"
        " --annotations-dir {params.annotations:q} --drafts-dir results/drafts --manifest {output.manifest:q}"
        " --labelling-images results/labelling/images --classes-file results/labelling/classes.txt"
        " --classes {input.classes:q} {params.options} {params.batch} --threads {threads} 2> {log:q}"


rule prelabel:
    default_target: False
    input:
        rules.drafts.output,

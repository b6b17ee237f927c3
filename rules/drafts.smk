# Rules that use the model that exists (labelling.draft_model) to help the person label; they never wait
# for training, and new labels do not make them retrain. Targets, run when asked:
# - `snakemake drafts` (workflow/detflow/drafts.py): draft annotations for the chosen frames not labelled yet;
# - `snakemake next_frames` (workflow/detflow/next_frames.py): labelling.batch more frames to label, chosen
#   by the model, added to the labelling folder with their drafts.
# Neither declares outputs: Snakemake would delete them before a rerun, and drafts are never replaced.


rule drafts:
    default_target: False
    input:
        selections=all_selections(),
        frames=selection_frame_dirs(),
        labelimg="results/labelling/labelimg.txt",
        annotations=annotation_files,
        code=stage_code("drafts"),
    log:
        "logs/drafts/drafts.log",
    conda:
        "../envs/training.yaml"
    threads: 2
    params:
        model=draft_model,
        annotations=annotations_dir(),
        classes=",".join(config["classes"]),
        options=cli_options(config["prelabel"]),
        batch=section_options("predict", "batch_size"),
    shell:
        # stdout (what to do with the drafts) goes to the terminal, the log to the log file.
        "python -m detflow.drafts {params.model:q} --selections {input.selections:q} --frame-dirs {input.frames:q}"
        " --annotations-dir {params.annotations:q} --drafts-dir results/drafts --manifest results/drafts/drafts.csv"
        " --labelling-images results/labelling/images --classes-file results/labelling/classes.txt"
        " --class-names {params.classes:q} {params.options} {params.batch} --threads {threads} 2> {log:q}"


use rule drafts as prelabel with:
    log:
        "logs/drafts/prelabel.log",


rule next_frames:
    default_target: False
    input:
        manifests=all_manifests(),
        frames=all_frame_dirs(),
        selections=all_selections(),
        selection_frames=selection_frame_dirs(),
        labelimg="results/labelling/labelimg.txt",
        annotations=annotation_files,
        code=stage_code("next_frames"),
    log:
        "logs/next_frames/next_frames.log",
    conda:
        "../envs/training.yaml"
    threads: 2
    params:
        model=draft_model,
        annotations=annotations_dir(),
        classes=",".join(config["classes"]),
        batch=config["labelling"]["batch"],
        options=cli_options(config["prelabel"]),
    shell:
        # stdout (what to do next) goes to the terminal, the log to the log file.
        "python -m detflow.next_frames {params.model:q} --manifests {input.manifests:q} --frame-dirs {input.frames:q}"
        " --selections {input.selections:q} --selection-frame-dirs {input.selection_frames:q}"
        " --annotations-dir {params.annotations:q} --added-dir results/labelling/added"
        " --report results/labelling/next_frames.csv --labelling-images results/labelling/images"
        " --drafts-dir results/drafts --batch {params.batch} --class-names {params.classes:q} {params.options}"
        " --threads {threads} 2> {log:q}"

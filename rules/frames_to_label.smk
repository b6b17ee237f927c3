# Rules of the frames_to_label stage: see workflow/detflow/frames_to_label.py. Target: `snakemake frames_to_label`.


rule select_frames:
    input:
        code=stage_code("frames_to_label"),
        manifest="results/frames/{video}.csv",
        frames="results/frames/{video}",
    output:
        selection="results/labelling/selected/{video}.csv",
    log:
        "logs/select_frames/{video}.log",
    conda:
        "../envs/video.yaml"
    params:
        options=section_options("labelling", "frames_per_video"),
    shell:
        "python -m detflow.frames_to_label select {input.manifest:q} {input.frames:q} {output.selection:q}"
        " {params.options} > {log:q} 2>&1"


rule labelling_folder:
    input:
        code=stage_code("frames_to_label"),
        selections=all_selections(),
        frames=selection_frame_dirs(),
    output:
        images=directory("results/labelling/images"),
        classes="results/labelling/classes.txt",
        command="results/labelling/labelimg.txt",
    log:
        "logs/labelling_folder.log",
    conda:
        "../envs/video.yaml"
    params:
        classes=",".join(config["classes"]),
        save_dir=annotations_dir(),
    shell:
        # stdout (the labelImg command) goes to the terminal, the log to the log file.
        "python -m detflow.frames_to_label folder --selections {input.selections:q} --frame-dirs {input.frames:q}"
        " --images-dir {output.images:q} --classes-file {output.classes:q} --command-file {output.command:q}"
        " --classes {params.classes:q} --save-dir {params.save_dir:q} 2> {log:q}"


rule frames_to_label:
    default_target: False
    input:
        labelling_targets(),


rule labelling:
    default_target: False
    input:
        labelling_targets(),

# Rules of the demo: its videos (workflow/detflow/demo.py) and its labeller, which labels the chosen
# frames from the videos' ground truth (workflow/detflow/demo_labeller.py). Used when videos.dir is null.


rule demo_video:
    input:
        code=stage_code("demo"),
    output:
        video="results/demo/videos/{video}.mp4",
        truth="results/demo/truth/{video}.csv",
    log:
        "logs/demo_video/{video}.log",
    benchmark:
        "benchmarks/demo_video/{video}.tsv"
    conda:
        "../envs/video.yaml"
    params:
        index=demo_video_index,
        seed=config["demo"]["seed"],
        seconds=config["demo"]["seconds"],
        fps=config["demo"]["fps"],
        width=config["demo"]["width"],
        height=config["demo"]["height"],
        classes=",".join(config["classes"]),
    shell:
        "python -m detflow.demo video {output.video:q} {output.truth:q} --index {params.index}"
        " --seed {params.seed} --seconds {params.seconds} --fps {params.fps} --width {params.width}"
        " --height {params.height} --classes {params.classes:q} > {log:q} 2>&1"


rule demo_labeller:
    input:
        code=stage_code("demo_labeller"),
        selections=all_selections(),
        truths=selection_truths(),
        frames=selection_frame_dirs(),
    output:
        annotations=directory("results/demo/annotations"),
    log:
        "logs/demo_labeller.log",
    conda:
        "../envs/video.yaml"
    shell:
        "python -m detflow.demo_labeller {output.annotations:q} --selections {input.selections:q}"
        " --truths {input.truths:q} --frame-dirs {input.frames:q} > {log:q} 2>&1"

# Rules of the frames stage: see workflow/detflow/frames.py.


rule extract_frames:
    input:
        code=stage_code("frames"),
        video=video_files,
    output:
        manifest="results/frames/{video}.csv",
        frames=directory("results/frames/{video}"),
    log:
        "logs/extract_frames/{video}.log",
    benchmark:
        "benchmarks/extract_frames/{video}.tsv"
    conda:
        "../envs/video.yaml"
    threads: 2
    params:
        options=cli_options(config["frames"]),
    shell:
        "python -m detflow.frames {input.video:q} --out-dir {output.frames:q} --manifest {output.manifest:q}"
        " {params.options} --threads {threads} > {log:q} 2>&1"

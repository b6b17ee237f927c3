# Rules of the best_snapshot stage: see workflow/detflow/best_snapshot.py.


rule best_snapshot:
    input:
        training="results/training/training.json",
        code=stage_code("best_snapshot"),
    output:
        best="results/model/best.json",
        snapshot="results/model/best_snapshot.h5",
    log:
        "logs/best_snapshot/best_snapshot.log",
    conda:
        "../envs/training.yaml"
    params:
        options=cli_options(config["select"]),
    shell:
        "python -m detflow.best_snapshot {input.training:q} {output.best:q} {output.snapshot:q}"
        " {params.options} > {log:q} 2>&1"

# Rules of the convert stage: see workflow/detflow/convert.py.


rule convert:
    input:
        snapshot="results/model/best_snapshot.h5",
        best="results/model/best.json",
        code=stage_code("convert"),
    output:
        model="results/model/inference.h5",
    log:
        "logs/convert/convert.log",
    conda:
        "../envs/training.yaml"
    params:
        options=cli_options(config["convert"]),
    shell:
        "python -m detflow.convert {input.snapshot:q} {input.best:q} {output.model:q} {params.options} > {log:q} 2>&1"

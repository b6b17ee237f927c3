# Rules of the best_snapshot stage: see workflow/detflow/best_snapshot.py. It chooses across all
# training variants: changing one variant reruns that training and what follows the choice.


rule best_snapshot:
    input:
        trainings=training_runs(),
        code=stage_code("best_snapshot"),
    output:
        best="results/model/best.json",
        snapshot="results/model/best_snapshot.h5",
    log:
        "logs/best_snapshot/best_snapshot.log",
    conda:
        "../envs/training.yaml"
    params:
        trainings=training_arguments(),
        options=cli_options(config["select"]),
    shell:
        "python -m detflow.best_snapshot {output.best:q} {output.snapshot:q} --training {params.trainings}"
        " {params.options} > {log:q} 2>&1"

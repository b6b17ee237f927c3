# Rules of the splits stage: see workflow/detflow/splits.py.


rule splits:
    input:
        table="results/voc/images.csv",
        classes="results/voc/classes.json",
        code=stage_code("splits"),
    output:
        lists=expand("results/voc/ImageSets/Main/{name}.txt", name=("train", "val", "trainval", "test")),
        summary="results/voc/splits.json",
        readable=report("results/voc/splits.txt", category="Dataset"),
    log:
        "logs/splits/splits.log",
    conda:
        "../envs/video.yaml"
    params:
        options=cli_options(config["split"]),
    shell:
        "python -m detflow.splits {input.table:q} {input.classes:q} results/voc {params.options} > {log:q} 2>&1"

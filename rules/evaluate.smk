# Rules of the evaluate stage: see workflow/detflow/evaluate.py.


rule evaluate:
    input:
        model="results/model/inference.h5",
        classes="results/voc/classes.json",
        images="results/voc/JPEGImages",
        annotations="results/voc/Annotations",
        split="results/voc/ImageSets/Main/{split}.txt",
        code=stage_code("evaluate"),
    output:
        json="results/evaluation/{split}/metrics.json",
        csv="results/evaluation/{split}/metrics.csv",
        curves=report(
            "results/evaluation/{split}/pr_curves.png",
            category="Evaluation",
            subcategory="Precision-recall curves",
            labels={"split": "{split}"},
            caption="../workflow/report/pr_curves.rst",
        ),
        confusion_csv="results/evaluation/{split}/confusion_matrix.csv",
        confusion_png=report(
            "results/evaluation/{split}/confusion_matrix.png",
            category="Evaluation",
            subcategory="Confusion matrices",
            labels={"split": "{split}"},
            caption="../workflow/report/confusion_matrix.rst",
        ),
    log:
        "logs/evaluate/{split}.log",
    benchmark:
        "benchmarks/evaluate/{split}.tsv"
    conda:
        "../envs/training.yaml"
    threads: 2
    params:
        options=cli_options(config["evaluate"]),
    shell:
        "python -m detflow.evaluate {input.model:q} results/voc {wildcards.split} --metrics-json {output.json:q}"
        " --metrics-csv {output.csv:q} --pr-curves {output.curves:q} --classes {input.classes:q}"
        " --confusion-csv {output.confusion_csv:q} --confusion-png {output.confusion_png:q}"
        " {params.options} --threads {threads} > {log:q} 2>&1"

# Rules of the report stage: see workflow/detflow/report.py. Each piece is
# marked for `snakemake --report` where it is made; summary.txt needs them all,
# so it is the run's last job, and it prints the test mAP.


rule training_report:
    input:
        trainings=training_runs(),
        best="results/model/best.json",
        code=stage_code("report"),
    output:
        curves=report(
            "results/report/training_curves.png", category="Training", caption="../workflow/report/training_curves.rst"
        ),
        page=report("results/report/model.html", category="Training", caption="../workflow/report/model.rst"),
    log:
        "logs/training_report/training_report.log",
    conda:
        "../envs/report.yaml"
    shell:
        "python -m detflow.report training {input.best:q} --curves {output.curves:q}"
        " --page {output.page:q} > {log:q} 2>&1"


rule dataset_report:
    input:
        splits="results/voc/splits.json",
        validation="results/voc/validation.json",
        code=stage_code("report"),
    output:
        page=report("results/report/dataset.html", category="Dataset", caption="../workflow/report/dataset.rst"),
    log:
        "logs/dataset_report/dataset_report.log",
    conda:
        "../envs/report.yaml"
    shell:
        "python -m detflow.report dataset {input.splits:q} {input.validation:q} --page {output.page:q} > {log:q} 2>&1"


rule results_report:
    input:
        metrics=expand("results/evaluation/{split}/metrics.json", split=config["predict"]["splits"]),
        predictions=expand("results/predictions/{split}/detections.json", split=config["predict"]["splits"]),
        videos=expand("results/predictions/videos/{video}.json", video=sorted(VIDEOS)),
        events=expand("results/predictions/videos/{video}.events.json", video=sorted(VIDEOS)),
        truths=demo_truths(),
        code=stage_code("report"),
    output:
        page=report(
            "results/report/metrics.html",
            category="Evaluation",
            subcategory="Metrics and detections",
            caption="../workflow/report/metrics.rst",
        ),
    log:
        "logs/results_report/results_report.log",
    conda:
        "../envs/report.yaml"
    shell:
        "python -m detflow.report results --metrics {input.metrics:q} --predictions {input.predictions:q}"
        " --videos {input.videos:q} --events {input.events:q} --truths {input.truths:q} --page {output.page:q}"
        " > {log:q} 2>&1"


rule gallery:
    input:
        detections="results/predictions/{split}/detections.json",
        images="results/predictions/{split}/images",
        code=stage_code("report"),
    output:
        sheet=report(
            "results/report/gallery/{split}.jpg",
            category="Predictions",
            labels={"split": "{split}"},
            caption="../workflow/report/gallery.rst",
        ),
    log:
        "logs/gallery/{split}.log",
    conda:
        "../envs/report.yaml"
    shell:
        "python -m detflow.report gallery {input.detections:q} {input.images:q} --out {output.sheet:q} > {log:q} 2>&1"


rule summary:
    input:
        best="results/model/best.json",
        trainings=training_runs(),
        splits="results/voc/splits.json",
        metrics=expand("results/evaluation/{split}/metrics.json", split=config["predict"]["splits"]),
        predictions=expand("results/predictions/{split}/detections.json", split=config["predict"]["splits"]),
        videos=expand("results/predictions/videos/{video}.json", video=sorted(VIDEOS)),
        annotated_videos=expand("results/predictions/videos/{video}.mp4", video=sorted(VIDEOS)),
        events=expand("results/predictions/videos/{video}.events.json", video=sorted(VIDEOS)),
        truths=demo_truths(),
        report_pieces=report_pieces(),
        code=stage_code("report"),
    output:
        summary="results/summary.txt",
    log:
        "logs/summary/summary.log",
    conda:
        "../envs/report.yaml"
    shell:
        # stdout (the test mAP) goes to the terminal, the log to the log file.
        "python -m detflow.report summary {input.best:q} {input.splits:q} --metrics {input.metrics:q}"
        " --predictions {input.predictions:q} --videos {input.videos:q} --events {input.events:q}"
        " --truths {input.truths:q} --out {output.summary:q} 2> {log:q}"

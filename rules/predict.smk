# Rules of the predict stage: see workflow/detflow/predict.py. A video's predictions need only the
# model, which names its own classes: a dataset rerun does not redo them.


rule predict_split:
    input:
        model="results/model/inference.h5",
        classes="results/voc/classes.json",
        images="results/voc/JPEGImages",
        split="results/voc/ImageSets/Main/{split}.txt",
        code=stage_code("predict"),
    output:
        images=directory("results/predictions/{split}/images"),
        csv="results/predictions/{split}/detections.csv",
        json="results/predictions/{split}/detections.json",
    log:
        "logs/predict_split/{split}.log",
    benchmark:
        "benchmarks/predict_split/{split}.tsv"
    conda:
        "../envs/training.yaml"
    threads: config["predict"]["threads"]
    params:
        options=section_options("predict", "score_threshold", "batch_size"),
    shell:
        "python -m detflow.predict images {input.model:q} results/voc {wildcards.split} --out-dir {output.images:q}"
        " --csv {output.csv:q} --json {output.json:q} --classes {input.classes:q} {params.options}"
        " --threads {threads} > {log:q} 2>&1"


rule predict_video:
    input:
        model="results/model/inference.h5",
        video=video_files,
        code=stage_code("predict"),
    output:
        video="results/predictions/videos/{video}.mp4",
        csv="results/predictions/videos/{video}.csv",
        json="results/predictions/videos/{video}.json",
        events_csv="results/predictions/videos/{video}.events.csv",
        events_json="results/predictions/videos/{video}.events.json",
    log:
        "logs/predict_video/{video}.log",
    benchmark:
        "benchmarks/predict_video/{video}.tsv"
    conda:
        "../envs/training.yaml"
    threads: config["predict"]["threads"]
    params:
        options=section_options("predict", "score_threshold", "batch_size", "video_stride"),
        events=section_options("events", "min_frames", "max_gap", "track_iou", "merge_iou"),
    shell:
        "python -m detflow.predict video {input.model:q} {input.video:q} --out-video {output.video:q}"
        " --csv {output.csv:q} --json {output.json:q} --events-csv {output.events_csv:q}"
        " --events-json {output.events_json:q} {params.options} {params.events}"
        " --threads {threads} > {log:q} 2>&1"


# New footage (predict.new_videos_dir): annotated as the training videos are, under results/predictions/new/.
# Its videos are in NEW_VIDEOS only, never in VIDEOS, so no frames, labelling, dataset or training job sees them.
use rule predict_video as predict_new_video with:
    input:
        model="results/model/inference.h5",
        video=new_video_files,
        code=stage_code("predict"),
    output:
        video="results/predictions/new/{new_video}.mp4",
        csv="results/predictions/new/{new_video}.csv",
        json="results/predictions/new/{new_video}.json",
        events_csv="results/predictions/new/{new_video}.events.csv",
        events_json="results/predictions/new/{new_video}.events.json",
    log:
        "logs/predict_new_video/{new_video}.log",
    benchmark:
        "benchmarks/predict_new_video/{new_video}.tsv"

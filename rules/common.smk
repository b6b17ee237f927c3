# Helpers and input functions of the workflow. Rules only call these.
# (rules/setup.smk has put the package on the path and checked the config files.)
import json
import os
import re
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

from detflow.lib.cli import InputError, options_of
from detflow.lib.code_graph import module_files
from detflow.lib.config import training_variants, validate_config
from detflow.lib.data.videos import discover_new_videos, discover_videos, frame_id
from detflow.lib.data.split_rule import SPLITS, split_of

try:
    validate_config(config)
except InputError as error:
    raise WorkflowError(f"invalid configuration: {error}")


# Targets renamed in 0.2, still run under their old names for one release. The workflow sees its targets only
# once the DAG is built, too late for a note before the jobs, so they are read from the command line.
RENAMED_TARGETS = {"labelling": "frames_to_label", "prelabel": "drafts"}
for old_name in sorted(set(sys.argv[1:]) & set(RENAMED_TARGETS)):
    print(
        f"note: the target {old_name} is now called {RENAMED_TARGETS[old_name]} "
        f"(snakemake {RENAMED_TARGETS[old_name]}); {old_name} goes in the next release",
        file=sys.stderr,
    )


# Seconds of work each: on a cluster they run beside Snakemake instead of waiting in the queue.
localrules:
    splits,
    training_inputs,
    imagenet_weights,
    best_snapshot,
    training_report,
    dataset_report,
    results_report,
    gallery,
    summary,


# Training variants (train.variants; "default" alone when there are none): {name: settings}, in config order.
VARIANTS = training_variants(config["train"])


wildcard_constraints:
    video=r"[^/]+",
    new_video=r"[^/]+",
    split=r"train|val|test",
    variant="|".join(re.escape(name) for name in VARIANTS),
    backbone=r"[A-Za-z0-9_.]+",


DEMO = config["videos"]["dir"] is None


def demo_video_ids():
    return [f"demo_{index:02d}" for index in range(config["demo"]["videos"])]


def demo_video_index(wildcards):
    """Number of a demo video, which seeds its content."""
    return demo_video_ids().index(wildcards.video)


def labelling_targets():
    """What a person needs before labelling; for the demo, also its generated labels."""
    return ["results/labelling/labelimg.txt"] + (["results/demo/annotations"] if DEMO else [])


def find_videos():
    if DEMO:
        return {video: [f"results/demo/videos/{video}.mp4"] for video in demo_video_ids()}
    try:
        return discover_videos(config["videos"]["dir"], config["videos"]["extensions"])
    except InputError as error:
        raise WorkflowError(str(error))


VIDEOS = find_videos()


def find_new_videos():
    """The new recordings of predict.new_videos_dir, {video id: [files]} (none when unset): annotated, never
    trained on. A missing or empty folder, or the training videos' own folder, stops the workflow here."""
    folder = config["predict"]["new_videos_dir"]
    if folder is None:
        return {}
    try:
        return discover_new_videos(folder, config["videos"]["dir"], config["videos"]["extensions"])
    except InputError as error:
        raise WorkflowError(f"invalid configuration: config: predict.new_videos_dir: {error}")


NEW_VIDEOS = find_new_videos()


def stage_code(stage):
    """The source files the stage detflow.<stage> runs (it and every package module it imports, followed
    to the end), as inputs: editing any of them reruns the stage's jobs, and nothing else does.
    Relative paths, so that moving the project does not make every job look stale."""
    return [os.path.relpath(path) for path in module_files(f"detflow.{stage}")]


def cli_options(settings):
    """Config values as command-line options: {"every_nth": 2} -> --every-nth 2."""
    return shlex.join(options_of(settings))


def video_files(wildcards):
    """Every file with this video id: more than one is refused by the extraction job."""
    return VIDEOS[wildcards.video]


def new_video_files(wildcards):
    """Every file of the new footage with this video id: more than one is refused by the prediction job."""
    return NEW_VIDEOS[wildcards.new_video]


def all_frame_dirs():
    return expand("results/frames/{video}", video=sorted(VIDEOS))


ADDED_FRAMES = "results/labelling/added"  # per-video lists of the frames next_frames added (no rule makes them)


def added_selections():
    """The frames `snakemake next_frames` added for labelling, one list per video, taken as they are."""
    folder = Path(ADDED_FRAMES)
    return sorted(str(path) for path in folder.glob("*.csv") if path.stem in VIDEOS) if folder.is_dir() else []


def all_selections():
    """Every list of frames chosen for labelling: each video's selection, then the frames added since."""
    return expand("results/labelling/selected/{video}.csv", video=sorted(VIDEOS)) + added_selections()


def selection_frame_dirs():
    """The frame folder of each list of all_selections(), in the same order."""
    return [f"results/frames/{Path(path).stem}" for path in all_selections()]


def selection_truths():
    """The demo's truth of each list of all_selections(), in the same order."""
    return [f"results/demo/truth/{Path(path).stem}.csv" for path in all_selections()]


def all_manifests():
    return expand("results/frames/{video}.csv", video=sorted(VIDEOS))


def annotations_dir():
    """The demo's generated labels, or the person's annotations: a folder, or a tool's .zip export."""
    return "results/demo/annotations" if DEMO else config["annotations"]["dir"]


def annotation_files(wildcards):
    """The annotations as inputs, so that changing them reruns their jobs: the demo's generated
    labels; a .zip export itself (replacing it reruns); or every annotation file of the person's
    folder, as the dataset stage lists them (none when it is missing or unusable: the job says why)."""
    from detflow.lib.data.annotation_sources import list_annotations

    if DEMO:
        return "results/demo/annotations"
    source = Path(annotations_dir())
    if source.is_file():
        return [str(source)]
    try:
        return [file.where for file in list_annotations(source).files]
    except InputError:
        return []


def draft_model(wildcards):
    """labelling.draft_model, the model that exists, for the rules that help to label. Read while planning: a model
    not there yet (or not one the convert stage wrote, or one of other classes) stops the run before any job,
    saying why, not after the failed job's command."""
    from detflow.lib.model.card import check_classes, read_card  # h5py: only where such a rule is planned

    path = config["labelling"]["draft_model"]
    try:
        check_classes(read_card(path), path, config["classes"], "config.yaml's classes")
    except InputError as error:
        raise WorkflowError(f"labelling.draft_model: {error}")
    return path


FRAME_NAME = re.compile(r"(?P<video>.+)_\d{6}")  # frames are named <video>_<index:06d>


def training_groups():
    """The groups (videos, or images) whose split is train or val, as the splits stage will assign them."""
    fractions = {name: config["split"][name] for name in SPLITS}
    return lambda group: split_of(group, config["split"]["seed"], fractions) in ("train", "val")


def training_videos():
    """Videos whose frames training may read: those in train or val (every video when images are split one by one)."""
    if config["split"]["group_by"] == "image":
        return sorted(VIDEOS)
    return [video for video in sorted(VIDEOS) if training_groups()(video)]


def training_annotation_files(wildcards):
    """The annotation files of train and val images: editing any other (a test video's) does not rerun training.
    The demo's generated labels and a .zip export can only be taken whole."""
    files = annotation_files(wildcards)
    if DEMO or Path(annotations_dir()).is_file():
        return files
    trains = training_groups()
    videos = set(training_videos())

    def for_training(path):
        image_id = frame_id(path)
        frame = FRAME_NAME.fullmatch(image_id)
        if config["split"]["group_by"] == "image":
            return trains(image_id)
        return frame is None or frame["video"] not in VIDEOS or frame["video"] in videos

    return [path for path in files if for_training(path)]


# The train settings that are the job's resources, not options of detflow.train.
JOB_RESOURCES = ("threads", "mem_mb", "runtime")


def variant_settings(wildcards):
    return VARIANTS[wildcards.variant]


def training_options(wildcards):
    """A variant's settings as options of detflow.train; threads, memory and runtime are the job's resources."""
    settings = {key: value for key, value in variant_settings(wildcards).items() if key not in JOB_RESOURCES}
    settings["weights"] = weights_file(settings["weights"], settings["backbone"]) or settings["weights"]
    if config["dataset"]["classes_from"] == "config":
        settings["classes"] = config["classes"]  # the dataset's classes must then be these, in this order
    return cli_options(settings)


def training_resource(name):
    """A job resource (threads, mem_mb, runtime) of the variant's training job."""
    return lambda wildcards: variant_settings(wildcards)[name]


def weights_file(weights, backbone):
    """The file a variant starts from: the ImageNet weights the imagenet_weights rule fetches, a file named in
    config, or None (from scratch)."""
    if weights == "imagenet":
        return f"resources/weights/{backbone}_imagenet.h5"
    return None if weights == "none" else weights


def training_weights(wildcards):
    """The variant's starting-weights file, as an input: replacing it reruns that training."""
    settings = variant_settings(wildcards)
    return [path for path in [weights_file(settings["weights"], settings["backbone"])] if path]


def training_runs():
    """Each variant's training.json, in config order."""
    return expand("results/training/{variant}/training.json", variant=VARIANTS)


def training_arguments():
    """--training VARIANT=PATH of every variant, for the best-snapshot stage."""
    return " ".join(shlex.quote(f"{variant}={path}") for variant, path in zip(VARIANTS, training_runs()))


def section_options(section, *keys):
    """Some values of a config section as command-line options."""
    return cli_options({key: config[section][key] for key in keys})


def demo_truths():
    """The demo videos' per-frame truth, which the report matches gesture events against; none for real videos."""
    return expand("results/demo/truth/{video}.csv", video=sorted(VIDEOS)) if DEMO else []


def report_pieces():
    """Every item of the HTML report (the summary job waits for them all)."""
    return [
        "results/report/training_curves.png",
        "results/report/model.html",
        "results/report/dataset.html",
        "results/report/metrics.html",
        *expand("results/report/gallery/{split}.jpg", split=config["predict"]["splits"]),
    ]


# What each export format writes into results/export (detflow.lib.model.runtimes.FILES).
EXPORT_OUTPUTS = {
    "savedmodel": directory("results/export/saved_model"),
    "onnx": "results/export/model.onnx",
    "onnx_int8": "results/export/model.int8.onnx",
    "tflite": "results/export/model.tflite",
    "tflite_int8": "results/export/model.int8.tflite",
}


def export_outputs():
    """The exported model in config's formats, and its description."""
    return [EXPORT_OUTPUTS[name] for name in config["export"]["formats"]] + ["results/export/model.json"]


def final_outputs():
    return [
        "results/labelling/labelimg.txt",
        "results/voc/splits.json",
        "results/model/best.json",
        "results/model/inference.h5",
        *expand("results/evaluation/{split}/metrics.json", split=config["predict"]["splits"]),
        *expand("results/predictions/{split}/detections.csv", split=config["predict"]["splits"]),
        *expand("results/predictions/videos/{video}.mp4", video=sorted(VIDEOS)),
        *expand("results/predictions/new/{new_video}.mp4", new_video=sorted(NEW_VIDEOS)),
        "results/report/training_curves.png",
        "results/summary.txt",
    ]

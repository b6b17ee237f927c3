"""The workflow end to end through Snakemake, on the demo kept tiny (a MobileNet 128/0.25 with
16-wide FPN and heads, 2 epochs of 3 steps): from the demo's videos to the inference model of the best
of two training variants and what a variant's or a selection setting reruns; and the whole run to
summary.txt, its HTML report, pre-labelling and what a prediction setting reruns. The same run on a
SLURM cluster: tests/test_cluster.py."""
import json
import re

import pytest
from tensorboard.backend.event_processing import plugin_event_multiplexer

from detflow.lib.model.card import read_card
from helpers.models import SNAPSHOT, TINY_TRAIN, logged_scalars
from helpers.workflow import TINY_WORKFLOW

# From the demo's videos to the inference model: 4 videos of 3 s, every frame extracted, 12 labelled per video.
DEMO_TO_MODEL = dict(
    demo={"videos": 4, "seconds": 3, "fps": 10, "width": 192, "height": 144},
    frames={"every_nth": 1},
    labelling={"frames_per_video": 12},
    split={"seed": 24, "train": 0.5, "val": 0.25, "test": 0.25},  # seed 24 puts the 4 videos 2/1/1
)


@pytest.mark.slow
def test_tiny_real_run_of_two_variants_to_inference_model_and_what_reruns(workflow_copy):
    """The demo's videos through every stage to an inference model, training two variants (2 epochs of 3
    steps each) side by side in results/training/ and choosing across them; then one variant's setting
    reruns that variant's training and what follows the choice, and a selection setting only selection and after."""
    variants = {"small": None, "wider": {"feature_size": 24}}
    workflow_copy.set_config(**DEMO_TO_MODEL, train={**TINY_TRAIN, "epochs": 2, "variants": variants})
    workflow_copy.snakemake("--resources", "gpu=2", "--", "results/model/inference.h5")
    root = workflow_copy.root
    for variant in variants:
        training = root / "results" / "training" / variant
        assert sorted(logged_scalars(training / "tensorboard" / "train")["epoch_mAP"]) == [0, 1]
        assert sorted(path.name for path in (training / "snapshots").glob("*.h5")) == [SNAPSHOT.format(1),
                                                                                      SNAPSHOT.format(2)]
        training_json = json.loads((training / "training.json").read_text())
        assert training_json["dataset"]["val"]["images"] > 0 and training_json["epochs_completed"] == 2
        train_log = (root / "logs" / "train" / f"{variant}.log").read_text()
        assert "uses CPU (2 threads); no GPU visible" in train_log or "uses GPU" in train_log  # the device, logged
    assert json.loads((root / "results/training/wider/training.json").read_text())["feature_size"] == 24
    # `tensorboard --logdir results/training` shows the two runs side by side.
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(root / "results" / "training"))
    assert sorted(multiplexer.Runs()) == ["small/tensorboard/train", "wider/tensorboard/train"]
    best = json.loads((root / "results" / "model" / "best.json").read_text())
    assert best["metric"] == "mAP" and best["epoch"] in (1, 2) and best["step"] == best["epoch"] - 1
    assert [item["variant"] for item in best["variants"]] == ["small", "wider"]
    chosen = next(item for item in best["variants"] if item["variant"] == best["variant"])
    assert chosen["value"] == best["value"] == max(item["value"] for item in best["variants"])
    assert best["snapshot"].startswith(f"results/training/{best['variant']}/snapshots/")
    assert (root / "results" / "model" / "best_snapshot.h5").read_bytes() == (root / best["snapshot"]).read_bytes()
    card = read_card(root / "results" / "model" / "inference.h5")
    assert card.training["variant"] == best["variant"]
    assert card.feature_size == (24 if best["variant"] == "wider" else 16)

    target = "results/model/inference.h5"
    assert workflow_copy.dry_run_jobs(target) == {}
    workflow_copy.set_config(train={"variants": {"small": None, "wider": {"feature_size": 24, "learning_rate": 2e-3}}})
    assert workflow_copy.dry_run_jobs(target) == {"train": 1, "best_snapshot": 1, "convert": 1}
    plan = workflow_copy.snakemake("-n", "--", target).stdout
    assert "wildcards: variant=wider" in plan and "variant=small" not in plan
    workflow_copy.set_config(train={"variants": variants}, select={"metric": "loss"})
    assert workflow_copy.dry_run_jobs(target) == {"best_snapshot": 1, "convert": 1}
    trained_at = [(root / "results" / "training" / variant / "training.json").stat().st_mtime_ns
                  for variant in variants]
    workflow_copy.snakemake("--", target)
    assert json.loads((root / "results" / "model" / "best.json").read_text())["metric"] == "loss"
    assert [(root / "results" / "training" / variant / "training.json").stat().st_mtime_ns
            for variant in variants] == trained_at


@pytest.mark.slow
def test_whole_tiny_run_through_snakemake_and_its_html_report(workflow_copy):
    """The demo from videos to summary.txt (a model of 2 epochs of 3 steps: it detects nothing, which the
    report must say), the HTML report, pre-labelling, and what a prediction setting reruns."""
    workflow_copy.set_config(**TINY_WORKFLOW)
    run = workflow_copy.snakemake()
    root = workflow_copy.root
    assert re.search(r"Test mAP@0\.5: (\d\.\d{4}|undefined .*) on \d+ test images", run.stdout)
    summary = (root / "results" / "summary.txt").read_text()
    assert summary.startswith("Run summary\nTest mAP@0.5: ") and "Model: variant default of 1, mobilenet128_0.25, FPN and heads 16" in summary
    for video in ("demo_00", "demo_01", "demo_02", "demo_03"):
        assert (root / "results" / "predictions" / "videos" / f"{video}.mp4").stat().st_size > 0
        assert (root / "logs" / "predict_video" / f"{video}.log").exists()
    metrics = json.loads((root / "results" / "evaluation" / "test" / "metrics.json").read_text())
    assert metrics["images"] > 0 and (root / "results" / "evaluation" / "test" / "pr_curves.png").exists()
    workflow_copy.snakemake("--report", "results/report/report.html")
    html_report = (root / "results" / "report" / "report.html").read_text()
    for item in ("training_curves.png", "model.html", "dataset.html", "metrics.html", "pr_curves.png",
                 "Precision-recall curves", "Predictions", "Evaluation", "Training", "Dataset"):
        assert item in html_report
    drafts = workflow_copy.snakemake("drafts")
    assert "Drafts: 0 new in results/drafts" in drafts.stdout  # the demo labels every chosen frame
    assert (root / "results" / "drafts" / "drafts.csv").read_text().count(",labelled,") == 4 * 6
    # A copied or moved project still works: nothing under results/ names the project folder.
    naming = [str(path.relative_to(root)) for path in (root / "results").rglob("*")
              if path.is_file() and str(root).encode() in path.read_bytes()]
    assert not naming
    assert workflow_copy.dry_run_jobs() == {}
    workflow_copy.set_config(predict={"score_threshold": 0.3})
    assert workflow_copy.dry_run_jobs() == {"predict_split": 2, "predict_video": 4, "gallery": 2, "results_report": 1,
                                            "summary": 1, "all": 1}
    # The model that exists drafts and chooses the next frames: asking for them never plans training.
    assert workflow_copy.dry_run_jobs("drafts") == {"drafts": 1}
    assert workflow_copy.dry_run_jobs("next_frames") == {"next_frames": 1}
    workflow_copy.set_config(labelling={"batch": 3})
    chosen = workflow_copy.snakemake("next_frames")
    assert "next frames: 3 added for labelling (round 1)" in chosen.stdout
    added = sorted((root / "results" / "labelling" / "added").glob("*.csv"))
    assert sum(len(path.read_text().splitlines()) - 1 for path in added) == 3
    # The demo labels them as a person would, and the next run trains on them.
    replanned = workflow_copy.dry_run_jobs()
    assert {"labelling_folder", "demo_labeller", "dataset", "train"} <= set(replanned), replanned
    # New labels do not make the drafts wait for a model trained on them.
    drafts = workflow_copy.dry_run_jobs("drafts")
    assert drafts["drafts"] == 1 and not {"dataset", "train", "best_snapshot", "convert"} & set(drafts), drafts


def _move_first_box(annotation):
    """A person's edit: the first box's right edge one pixel to the left."""
    text = annotation.read_text()
    xmax = re.search(r"<xmax>(\d+)</xmax>", text)
    annotation.write_text(text[:xmax.start(1)] + str(int(xmax[1]) - 1) + text[xmax.end(1):])


@pytest.mark.slow
def test_a_test_videos_label_edit_reruns_evaluation_not_training(workflow_copy, tmp_path):
    """Training depends on exactly what it reads (the train and val labels and frames): on a person's own
    videos and labels, editing a box of the test video reruns the dataset, the splits and the test
    evaluation, not training; editing a box of a training video retrains. Shown with snakemake -n."""
    from detflow.demo import generate_video
    from detflow.demo_labeller import write_demo_labels

    videos, truths, labels = tmp_path / "videos", tmp_path / "truth", tmp_path / "labels"
    names = [f"take_{index}" for index in range(4)]
    for index, name in enumerate(names):  # drawn hands with their true boxes, as a person's videos and labels
        generate_video(videos / f"{name}.mp4", truths / f"{name}.csv", index=index, seed=5, seconds=2, fps=10,
                       width=160, height=120, classes=["grab", "drop"])
    labels.mkdir()
    workflow_copy.set_config(videos={"dir": str(videos)}, annotations={"dir": str(labels)},
                             labelling={"frames_per_video": 6}, split={"seed": 0, "train": 0.5, "val": 0.25,
                                                                      "test": 0.25},
                             train={**TINY_TRAIN, "epochs": 1})
    workflow_copy.snakemake("labelling")
    root = workflow_copy.root
    write_demo_labels([root / f"results/labelling/selected/{name}.csv" for name in names],
                      [truths / f"{name}.csv" for name in names], [root / f"results/frames/{name}" for name in names],
                      labels)
    target = "results/evaluation/test/metrics.json"
    workflow_copy.snakemake("--", target)
    groups = json.loads((root / "results/voc/splits.json").read_text())["groups"]
    assert groups == {"take_0": "train", "take_1": "train", "take_2": "val", "take_3": "test"}
    assert workflow_copy.dry_run_jobs(target) == {}

    _move_first_box(sorted(labels.glob("take_3_*.xml"))[0])
    assert workflow_copy.dry_run_jobs(target) == {"dataset": 1, "splits": 1, "evaluate": 1}
    workflow_copy.snakemake("--", target)

    _move_first_box(sorted(labels.glob("take_0_*.xml"))[0])
    assert workflow_copy.dry_run_jobs(target) == {"dataset": 1, "splits": 1, "training_inputs": 1, "train": 1,
                                                  "best_snapshot": 1, "convert": 1, "evaluate": 1}

"""The report: training curves from TensorBoard logs and the chosen snapshot,
dataset statistics, the metrics table, a gallery and the summary, from the
stages' real outputs; it says so when nothing was detected. The whole workflow
with `snakemake --report`: tests/test_workflow_end_to_end.py."""
import json
import re

import cv2
import numpy as np
import pytest
import tensorflow as tf
from keras_retinanet.utils.colors import label_color

from detflow import evaluate, predict, report
from detflow.best_snapshot import select_best_snapshot
from detflow.dataset import build_dataset
from detflow.lib.inference import detector as inference
from detflow.splits import make_splits
from helpers.config import BATCH, CONFIG, DATASET, EVENTS
from helpers.media import write_video
from helpers.models import BACKBONE, CARD, FEATURE_SIZE, IMAGE_MAX_SIDE, IMAGE_MIN_SIDE
from helpers.voc import CLASSES, annotate, make_frames, make_voc

LOGGED = {"epoch_loss": [3.1, 2.2, 1.7, 1.5, 1.6], "epoch_mAP": [0.05, 0.31, 0.62, 0.58, 0.49],  # best: epoch 3
          "epoch_regression_loss": [2.0, 1.5, 1.2, 1.1, 1.2], "epoch_classification_loss": [1.1, 0.7, 0.5, 0.4, 0.4],
          "epoch_AP_grab": [0.1, 0.4, 0.7, 0.6, 0.5]}  # no AP_drop: a series that is not logged is left out
SIZE = (96, 72)  # width, height of the dataset page's labelled frames


# A second training variant, worse by validation mAP (best 0.5 at epoch 4 of 4).
OTHER_VARIANT = {"epoch_loss": [1.8, 1.2, 0.9, 0.8], "epoch_mAP": [0.1, 0.3, 0.45, 0.5]}


def write_training(root, logged):
    """training.json and TensorBoard logs as the training stage leaves them in ``root``; returns training.json."""
    writer = tf.summary.create_file_writer(str(root / "tensorboard" / "train"))
    with writer.as_default():
        for tag, values in logged.items():
            for step, value in enumerate(values):
                tf.summary.scalar(tag, value, step=step)
    writer.close()
    epochs = len(logged["epoch_loss"])
    (root / "snapshots").mkdir(parents=True)
    for epoch in range(1, epochs + 1):
        (root / "snapshots" / f"{BACKBONE}_pascal_{epoch:02d}.h5").write_bytes(b"weights")
    training = {
        "backbone": BACKBONE, "feature_size": FEATURE_SIZE, "classes": CLASSES,
        "settings": {"image_min_side": IMAGE_MIN_SIDE, "image_max_side": IMAGE_MAX_SIDE, "weights": "none",
                     "steps": 50, "batch_size": 8},
        "device": "CPU (2 threads); no GPU visible", "epochs_requested": epochs, "epochs_completed": epochs,
        "stopped": "completed", "train_seconds": 321.5, "snapshot_dir": str(root / "snapshots"),
        "snapshot_pattern": f"{BACKBONE}_pascal_{{epoch:02d}}.h5", "tensorboard_dir": str(root / "tensorboard"),
        "tensorboard_run": "train",
    }
    (root / "training.json").write_text(json.dumps(training))
    return root / "training.json"


@pytest.fixture(scope="module")
def training_run(tmp_path_factory):
    """Two training variants as the training stage leaves them ("small", the better one, and "other"), and
    best.json chosen from them."""
    root = tmp_path_factory.mktemp("training")
    trainings = {"small": write_training(root / "small", LOGGED),
                 "other": write_training(root / "other", OTHER_VARIANT)}
    select_best_snapshot(trainings, "mAP", root / "best.json", root / "best_snapshot.h5")
    return root


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    """6 train images (the model's, see conftest) and 6 val images; the test split lists the train images."""
    root = make_voc(tmp_path_factory.mktemp("data") / "voc", train=6, val=6)
    (root / "ImageSets" / "Main" / "test.txt").write_text((root / "ImageSets" / "Main" / "train.txt").read_text())
    return root


@pytest.fixture(scope="module")
def outputs(voc, model, tmp_path_factory):
    """Real prediction and evaluation outputs of a small model on val and test, a video, and the same
    with a threshold nothing reaches."""
    root = tmp_path_factory.mktemp("outputs")
    video = write_video(root / "take.avi", 6)
    for threshold, name in ((0.5, "found"), (1.0, "nothing")):
        detector = inference.Detector(model, CARD, score_threshold=threshold)
        for split in ("val", "test"):
            out = root / name / "predictions" / split
            predict.predict_split(detector, voc, split, out / "images", out / "detections.csv", out / "detections.json",
                                  batch_size=BATCH)
        predict.predict_video(detector, [video], root / name / "take.mp4", root / name / "take.csv",
                              root / name / "take.json", event_settings=EVENTS, stride=1, batch_size=BATCH)
    for split in ("val", "test"):
        metrics, curves = evaluate.evaluate_split(model, CARD, voc, split, **CONFIG["evaluate"])
        (root / "evaluation" / split).mkdir(parents=True)
        evaluate.write_metrics(metrics, root / "evaluation" / split / "metrics.json",
                               root / "evaluation" / split / "metrics.csv")
    return root


def files(outputs, name):
    return {
        "metrics": [outputs / "evaluation" / split / "metrics.json" for split in ("val", "test")],
        "predictions": [outputs / name / "predictions" / split / "detections.json" for split in ("val", "test")],
        "videos": [outputs / name / "take.json"],
    }


def cells(page):
    """The text of every table cell, row by row."""
    return [re.findall(r"<t[dh]>(.*?)</t[dh]>", row) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", page)]


def has_colour(image, bgr, tolerance=12):
    return bool(np.any(np.all(np.abs(image.astype(int) - np.array(bgr)) <= tolerance, axis=2)))


def test_training_curves_and_the_chosen_snapshot_come_from_the_tensorboard_logs(training_run, tmp_path):
    report.training_report(training_run / "best.json", tmp_path / "curves.png", tmp_path / "model.html")
    page = (tmp_path / "model.html").read_text()
    assert ("Epoch 3 of 5 of variant small was chosen: it has the highest validation mAP of the 2 variants "
            "(mAP = 0.6200") in page
    rows = cells(page)
    assert rows[-5:] == [[str(epoch), f"{loss:.4f}", f"{value:.4f}"] for epoch, loss, value in
                         zip(range(1, 6), LOGGED["epoch_loss"], LOGGED["epoch_mAP"])]
    assert re.search(r'<tr class="chosen"><td>3</td>', page)
    # The variants table: each variant's best epoch and value, the chosen one highlighted.
    image_sizes = f"{IMAGE_MIN_SIDE}-{IMAGE_MAX_SIDE}"
    assert ["small", BACKBONE, str(FEATURE_SIZE), image_sizes, "5", "3", "0.6200"] in rows
    assert ["other", BACKBONE, str(FEATURE_SIZE), image_sizes, "4", "4", "0.5000"] in rows
    assert re.search(r'<tr class="chosen"><td>small</td>', page)
    assert ["FPN and head width", str(FEATURE_SIZE)] in rows and ["variant", "small"] in rows
    curves = cv2.imread(str(tmp_path / "curves.png"))
    assert curves.shape[0] > 600 and has_colour(curves, (43, 57, 192))  # the chosen epoch's red star and line
    assert has_colour(curves, (191, 95, 31)) and has_colour(curves, (58, 139, 46))  # both variants' curves
    values = report.training_values(json.loads((training_run / "small" / "training.json").read_text()), list(CLASSES))
    assert sorted(values) == ["AP_grab", "classification_loss", "loss", "mAP", "regression_loss"]
    assert values["AP_grab"] == pytest.approx(dict(enumerate(LOGGED["epoch_AP_grab"], 1)))


def test_dataset_page_shows_images_and_boxes_per_class_per_split(tmp_path):
    images = make_frames(tmp_path / "frames", {"v1": 4, "v2": 4, "v3": 4, "v4": 4}, SIZE)
    labels = tmp_path / "labels"
    for number, image_id in enumerate(sorted(images)):
        annotate(labels, image_id, [["grab"], ["drop"], ["grab", "drop"], []][number % 4], SIZE)
    build_dataset(labels, sorted((tmp_path / "frames").iterdir()), tmp_path / "voc", classes=["grab", "drop"],
                  **DATASET)
    splits = make_splits(tmp_path / "voc" / "images.csv", tmp_path / "voc" / "classes.json", tmp_path / "voc",
                         seed=1, fractions={"train": 0.5, "val": 0.25, "test": 0.25}, group_by="image")
    page = report.dataset_page(splits, json.loads((tmp_path / "voc" / "validation.json").read_text()))
    rows = cells(page)
    assert rows[0] == ["split", "images", "images without boxes", "boxes grab", "boxes drop", "images with grab",
                       "images with drop"]
    for row in rows[1:]:
        split = splits["splits"][row[0]]
        assert row[1:] == [str(value) for value in (split["images"], split["negatives"], split["boxes"]["grab"],
                                                    split["boxes"]["drop"], split["images_with"]["grab"],
                                                    split["images_with"]["drop"])]
    assert sum(int(row[3]) for row in rows[1:]) == 8 and sum(int(row[1]) for row in rows[1:]) == 16
    assert "16 annotation files checked: 16 used (4 without boxes), 0 skipped" in page


def test_metrics_table_and_detections(outputs, tmp_path):
    found = files(outputs, "found")
    report.results_report(found["metrics"], found["predictions"], found["videos"], tmp_path / "metrics.html")
    page = (tmp_path / "metrics.html").read_text()
    metrics = [json.loads(path.read_text()) for path in found["metrics"]]
    rows = cells(page)
    assert rows[0] == ["class", *(f"{item['split']}: AP ({item['boxes']} boxes)" for item in metrics)]
    assert rows[1] == ["grab", *(f"{item['classes'][0]['average_precision']:.3f}" for item in metrics)]
    assert rows[3] == ["mAP", *(f"{item['mAP']:.3f}" for item in metrics)]
    assert rows[5] == ["mAP@[.5:.95] (COCO)", *(f"{item['mAP_50_95']:.3f}" for item in metrics)]
    video = json.loads(found["videos"][0].read_text())
    assert ["video take", "6", str(video["frames_with_detections"]), *(str(video["detections"][name]) for name in CLASSES),
            *(str(video["events"][name]) for name in CLASSES)] in rows
    split_rows = [row for row in rows if row[0].endswith(" split")]
    assert split_rows and all(row[-len(CLASSES):] == ["–"] * len(CLASSES) for row in split_rows)  # images: no events
    assert f"Gesture events: {sum(video['events'].values())} in 1 videos" in page
    assert "Nothing was detected" not in page


def test_nothing_detected_is_said_in_the_page_gallery_and_summary(outputs, training_run, tmp_path, capsys):
    nothing = files(outputs, "nothing")
    report.results_report(nothing["metrics"], nothing["predictions"], nothing["videos"], tmp_path / "metrics.html")
    assert ('<p class="alert">Nothing was detected: no box scored 1 or more in any image or video.'
            in (tmp_path / "metrics.html").read_text())
    report.gallery(nothing["predictions"][0], outputs / "nothing" / "predictions" / "val" / "images",
                   tmp_path / "gallery.jpg")
    sheet = cv2.imread(str(tmp_path / "gallery.jpg"))
    assert not any(has_colour(sheet, label_color(label), 2) for label in CLASSES.values())  # no box drawn
    splits = {"splits": {"train": {"images": 6}, "val": {"images": 6}, "test": {"images": 6}}}
    (tmp_path / "splits.json").write_text(json.dumps(splits))
    report.summary(training_run / "best.json", tmp_path / "splits.json",
                   nothing["metrics"], nothing["predictions"], nothing["videos"], tmp_path / "summary.txt")
    assert "Nothing was detected" in (tmp_path / "summary.txt").read_text()
    assert capsys.readouterr().out.startswith("Test mAP@0.5: ")


def test_gallery_shows_annotated_images_spread_over_the_split(outputs, tmp_path):
    found = files(outputs, "found")
    report.gallery(found["predictions"][0], outputs / "found" / "predictions" / "val" / "images",
                   tmp_path / "gallery.jpg")
    sheet = cv2.imread(str(tmp_path / "gallery.jpg"))
    assert sheet.shape[1] > 1000 and sheet.shape[0] > 500  # 6 images: 4 columns, 2 rows
    assert has_colour(sheet, label_color(CLASSES["grab"]))
    assert report.gallery_choice(list(range(100)), 5) == [0, 25, 50, 74, 99]


def test_summary_has_the_headline_numbers_and_prints_the_test_map(outputs, training_run, tmp_path, capsys):
    found = files(outputs, "found")
    (tmp_path / "splits.json").write_text(json.dumps({"splits": {"train": {"images": 6}, "val": {"images": 6},
                                                                 "test": {"images": 6}}}))
    report.summary(training_run / "best.json", tmp_path / "splits.json",
                   found["metrics"], found["predictions"], found["videos"], tmp_path / "summary.txt")
    test = json.loads(found["metrics"][1].read_text())
    lines = (tmp_path / "summary.txt").read_text().splitlines()
    assert lines[1].startswith(f"Test mAP@0.5: {test['mAP']:.3f} (grab ")
    assert lines[1].endswith(f"; mAP@[.5:.95] {test['mAP_50_95']:.3f}")
    assert lines[3].startswith(f"Model: variant small of 2, {BACKBONE}, FPN and heads {FEATURE_SIZE} wide") and "epoch 3 of 5" in lines[3]
    assert capsys.readouterr().out == (f"Test mAP@0.5: {test['mAP']:.4f} on 6 test images; "
                                       f"mAP@[.5:.95] {test['mAP_50_95']:.4f}\n")
    assert report.headline([]) == "Test mAP: not evaluated (add test to predict.splits)"

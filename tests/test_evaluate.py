"""Evaluation: keras-retinanet's AP and mAP per split, the precision-recall
curves it computes, and splits that are empty, have no boxes or hold an
unreadable image."""
import csv
import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from keras_retinanet.utils import eval as retinanet_eval
from keras_retinanet.utils.colors import label_color

from detflow import evaluate
from detflow.lib.data.pascal_voc import read_annotation, write_annotation
from detflow.lib.data.voc_tree import VocTree
from detflow.lib.inference import detector as inference
from detflow.lib.labelling.drafts import voc_objects
from detflow.lib.model import retinanet
from helpers.config import CONFIG, config_options
from helpers.models import BACKBONE, CARD, FEATURE_SIZE, IMAGE_MAX_SIDE, IMAGE_MIN_SIDE
from helpers.voc import CLASSES, make_voc


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    """8 val images (the model and model_path fixtures are initialised on its 4 train images)."""
    return make_voc(tmp_path_factory.mktemp("data") / "voc", train=4, val=8)


def val_generator(root):
    return evaluate.ReadableVocGenerator(str(root), "val", classes=CLASSES, image_min_side=IMAGE_MIN_SIDE,
                                         image_max_side=IMAGE_MAX_SIDE, shuffle_groups=False,
                                         preprocess_image=retinanet.backbone(BACKBONE).preprocess_image)


@pytest.fixture(scope="module")
def model_truth(voc, model, tmp_path_factory):
    """The VOC tree with the val annotations replaced by the model's own detections scoring above 0.5,
    found as keras-retinanet's evaluation finds them: a split on which the model is right about every box."""
    root = tmp_path_factory.mktemp("truth") / "voc"
    shutil.copytree(voc, root)
    generator = val_generator(root)
    found, _ = retinanet_eval._get_detections(generator, model, score_threshold=0.5)
    for index, per_label in enumerate(found):
        image_id = generator.image_names[index]
        height, width = cv2.imread(str(generator.image_path(index))).shape[:2]
        detections = [inference.Detection(label, generator.label_to_name(label), float(row[4]), tuple(row[:4]))
                      for label, rows in enumerate(per_label) for row in rows]
        write_annotation(root / "Annotations" / f"{image_id}.xml", filename=f"{image_id}.jpg", width=width,
                         height=height, objects=voc_objects(detections, width, height))
    return root


def evaluate_val(model, root, split="val", **options):
    return evaluate.evaluate_split(model, CARD, root, split, **{**CONFIG["evaluate"], **options})


def test_model_scores_full_marks_on_its_own_detections(model, model_truth):
    metrics, curves = evaluate_val(model, model_truth)
    assert metrics["images"] == 8 and metrics["classes_with_boxes"] == 2
    for item in metrics["classes"]:
        assert item["boxes"] > 0 and item["detections"] >= item["boxes"]
        assert item["max_recall"] == 1.0 and item["average_precision"] == 1.0
    assert metrics["mAP"] == metrics["weighted_mAP"] == 1.0
    # pycocotools agrees at IoU 0.5; the boxes, rounded to whole pixels in the XML, still overlap by far more.
    assert metrics["AP50"] == pytest.approx(1.0) and metrics["mAP_50_95"] > 0.8
    counts = np.array(metrics["confusion_matrix"]["counts"])
    assert metrics["confusion_matrix"]["classes"] == [*CLASSES, "background"]
    assert np.trace(counts) == metrics["boxes"] and counts.sum() == metrics["boxes"]  # every box found, nothing else
    for name, (recall, precision) in curves.items():
        assert len(recall) == len(precision) == metrics["classes"][CLASSES[name]]["detections"]
        assert np.all(np.diff(recall) >= 0) and recall[-1] == 1.0 and precision[0] == 1.0


def test_same_numbers_as_keras_retinanet_evaluate_and_its_curves(model, voc):
    metrics, curves = evaluate_val(model, voc, iou_threshold=0.3)
    average_precisions, _ = retinanet_eval.evaluate(val_generator(voc), model, iou_threshold=0.3)  # not recorded
    for name, label in CLASSES.items():
        item = metrics["classes"][label]
        assert item["average_precision"] == pytest.approx(average_precisions[label][0])
        assert item["boxes"] == average_precisions[label][1] > 0
        recall, precision = curves[name]
        # The recorded curve is the one the library integrated (VOC's AP: area under its precision envelope).
        assert retinanet_eval._compute_ap(recall, precision) == pytest.approx(item["average_precision"])
    assert metrics["iou_threshold"] == 0.3 and metrics["notes"] == []


def test_missed_boxes_lower_recall_and_ap(model, model_truth, tmp_path):
    root = tmp_path / "voc"
    shutil.copytree(model_truth, root)
    for image_id in VocTree(root).split_image_ids("val")[:4]:  # a box nothing predicts: the image's corner
        image = cv2.imread(str(root / "JPEGImages" / f"{image_id}.jpg"))
        height, width = image.shape[:2]
        objects = [item.as_dict() for item in read_annotation(root / "Annotations" / f"{image_id}.xml").objects]
        write_annotation(root / "Annotations" / f"{image_id}.xml", filename=f"{image_id}.jpg", width=width,
                         height=height, objects=objects + [{"name": "drop", "xmin": 1, "ymin": 1, "xmax": 4, "ymax": 4}])
    full, _ = evaluate_val(model, model_truth)
    metrics, _ = evaluate_val(model, root)
    drop_row = metrics["confusion_matrix"]["counts"][CLASSES["drop"]]
    assert drop_row[-1] - full["confusion_matrix"]["counts"][CLASSES["drop"]][-1] == 4  # the 4 missed boxes
    assert metrics["mAP_50_95"] < full["mAP_50_95"]
    drop_full, drop = full["classes"][CLASSES["drop"]], metrics["classes"][CLASSES["drop"]]
    assert drop["boxes"] == drop_full["boxes"] + 4
    assert drop["max_recall"] == pytest.approx(drop_full["boxes"] / drop["boxes"])
    assert drop["average_precision"] < drop_full["average_precision"]
    assert metrics["classes"][CLASSES["grab"]] == full["classes"][CLASSES["grab"]]


def test_outputs_json_csv_and_pr_curves(model, voc, tmp_path):
    metrics, curves = evaluate_val(model, voc)
    evaluate.write_metrics(metrics, tmp_path / "metrics.json", tmp_path / "metrics.csv")
    evaluate.plot_pr_curves(metrics, curves, tmp_path / "pr.png")
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics
    with open(tmp_path / "metrics.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["class"] for row in rows] == ["grab", "drop", "mAP"]
    assert float(rows[-1]["mAP_50_95"]) == pytest.approx(metrics["mAP_50_95"], abs=1e-4)
    assert float(rows[-1]["average_precision"]) == pytest.approx(metrics["mAP"], abs=1e-4)
    assert int(rows[0]["boxes"]) == metrics["classes"][0]["boxes"]
    plot = cv2.imread(str(tmp_path / "pr.png"))
    assert plot.shape[0] > 400 and plot.shape[1] > 600
    for label in CLASSES.values():  # a curve in each class's colour
        colour = np.array(label_color(label))
        assert np.any(np.all(np.abs(plot.astype(int) - colour) < 10, axis=2))


def test_split_without_images_or_boxes_is_reported_not_an_error(model, voc, tmp_path):
    root = tmp_path / "voc"
    shutil.copytree(voc, root)
    (root / "ImageSets" / "Main" / "test.txt").write_text("")
    metrics, curves = evaluate_val(model, root, split="test")
    assert metrics["images"] == 0 and metrics["mAP"] is None and curves == {}
    assert metrics["notes"] == ["the test split lists no images: nothing to evaluate"]
    evaluate.plot_pr_curves(metrics, curves, tmp_path / "empty.png")
    for image_id in VocTree(root).split_image_ids("val"):
        write_annotation(root / "Annotations" / f"{image_id}.xml", filename=f"{image_id}.jpg", width=10, height=10,
                         objects=[])
    metrics, curves = evaluate_val(model, root)
    assert metrics["mAP"] is None and metrics["boxes"] == 0 and all(
        item["average_precision"] is None for item in metrics["classes"])
    assert "no image of the val split has a box: AP and mAP are undefined" in metrics["notes"]
    evaluate.write_metrics(metrics, tmp_path / "m.json", tmp_path / "m.csv")
    evaluate.plot_pr_curves(metrics, curves, tmp_path / "none.png")
    assert (tmp_path / "none.png").stat().st_size > 0


def test_unreadable_image_is_left_out_and_listed(model, voc, tmp_path):
    root = tmp_path / "voc"
    shutil.copytree(voc, root)
    (root / "JPEGImages" / "val_003.jpg").write_bytes(b"\xff\xd8 broken")
    metrics, _ = evaluate_val(model, root)
    assert metrics["images"] == 7 and metrics["images_listed"] == 8
    assert [item["image"] for item in metrics["unreadable"]] == ["val_003"]
    assert metrics["notes"][0] == "1 of the 8 images cannot be read and are left out"


def test_command_line_writes_every_output(voc, model_path, tmp_path):
    out = tmp_path / "evaluation"
    out.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "detflow.evaluate", str(model_path), str(voc), "val", "--metrics-json",
         str(out / "metrics.json"), "--metrics-csv", str(out / "metrics.csv"), "--pr-curves", str(out / "pr.png"),
         "--confusion-csv", str(out / "confusion.csv"), "--confusion-png", str(out / "confusion.png"),
         "--classes", str(voc / "classes.json"), "--backbone", BACKBONE, "--feature-size", str(FEATURE_SIZE),
         "--image-min-side", str(IMAGE_MIN_SIDE), "--image-max-side", str(IMAGE_MAX_SIDE), "--threads", "1",
         *config_options("evaluate")],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"] == 8 and 0 <= metrics["mAP"] <= 1
    assert f"val: mAP@0.5 {metrics['mAP']:.4f}, mAP@[.5:.95] {metrics['mAP_50_95']:.4f} over 8 images" in result.stderr
    assert (out / "pr.png").stat().st_size > 10_000 and (out / "confusion.png").stat().st_size > 5_000
    with open(out / "confusion.csv", newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ["true / predicted", *CLASSES, "background"]
    assert [[int(count) for count in row[1:]] for row in rows[1:]] == metrics["confusion_matrix"]["counts"]

"""COCO metrics through pycocotools and the confusion matrix, on hand-made boxes whose answers are
worked out by hand below."""
import numpy as np
import pytest

from detflow.lib.metrics.coco import coco_metrics, confusion_matrix

NO_BOXES, NO_DETECTIONS = np.zeros((0, 4)), np.zeros((0, 5))

# Two images, classes "a" (label 0) and "b" (label 1).
ANNOTATIONS = [
    [np.array([[10, 10, 50, 50.]]), np.array([[60, 60, 100, 100.]])],
    [np.array([[0, 0, 20, 20.]]), NO_BOXES],
]
DETECTIONS = [
    # a: exact. b: shifted 4 px (IoU 36*40 / (44*40) = 0.818), then a tiny box of nothing.
    [np.array([[10, 10, 50, 50, 0.9]]), np.array([[64, 60, 104, 100, 0.8], [0, 0, 5, 5, 0.7]])],
    # a: far from its box.
    [np.array([[30, 30, 40, 40, 0.6]]), NO_DETECTIONS],
]


def test_coco_metrics_match_hand_computed_answers():
    metrics = coco_metrics(ANNOTATIONS, DETECTIONS, ["a", "b"], 100)
    # a: 2 boxes; the best detection is right at every IoU, the next one wrong: precision 1 up to
    # recall 0.5, recall above 0.5 never reached: 51 of COCO's 101 recall points.
    a = 51 / 101
    assert metrics["classes"]["a"] == pytest.approx({"mAP_50_95": a, "AP50": a, "AP75": a})
    # b: its one box found at the IoU thresholds 0.50 ... 0.80 (7 of the 10), missed at 0.85 ... 0.95.
    assert metrics["classes"]["b"] == pytest.approx({"mAP_50_95": 0.7, "AP50": 1.0, "AP75": 1.0})
    assert metrics["overall"] == pytest.approx({"mAP_50_95": (a + 0.7) / 2, "AP50": (a + 1) / 2, "AP75": (a + 1) / 2})


def test_class_without_boxes_is_undefined_and_left_out():
    annotations = [[image[0], NO_BOXES] for image in ANNOTATIONS]
    metrics = coco_metrics(annotations, DETECTIONS, ["a", "b"], 100)
    assert metrics["classes"]["b"] == {"mAP_50_95": None, "AP50": None, "AP75": None}
    assert metrics["overall"]["mAP_50_95"] == pytest.approx(51 / 101)


def test_no_detections_score_zero_and_no_boxes_are_undefined():
    nothing = [[NO_DETECTIONS, NO_DETECTIONS] for _ in ANNOTATIONS]
    overall = coco_metrics(ANNOTATIONS, nothing, ["a", "b"], 100)["overall"]
    assert overall == {"mAP_50_95": 0.0, "AP50": 0.0, "AP75": 0.0}
    empty = coco_metrics([], [], ["a", "b"], 100)
    assert empty["overall"] == {"mAP_50_95": None, "AP50": None, "AP75": None}


def test_confusion_matrix_counts():
    matrix = confusion_matrix(ANNOTATIONS, DETECTIONS, 2, iou_threshold=0.5, score_threshold=0.5)
    # Rows: true a, b, background; columns: predicted a, b, background.
    assert matrix.tolist() == [[1, 0, 1],   # a found once, missed once (image 1)
                               [0, 1, 0],   # b found
                               [1, 1, 0]]   # false alarms: a in image 1, the tiny b box
    # Above the tiny box's score it no longer counts; at IoU 0.9 the shifted b is a miss and a false alarm.
    above = confusion_matrix(ANNOTATIONS, DETECTIONS, 2, iou_threshold=0.5, score_threshold=0.75)
    assert above.tolist() == [[1, 0, 1], [0, 1, 0], [0, 0, 0]]
    assert confusion_matrix(ANNOTATIONS, DETECTIONS, 2, iou_threshold=0.9, score_threshold=0.5)[1].tolist() == [0, 0, 1]


def test_confusion_matrix_wrong_class_and_one_match_per_box():
    # One box of a, found as b and (less well) as a: the better overlap (b) takes it, the a detection is a false alarm.
    annotations = [[np.array([[0, 0, 10, 10.]]), NO_BOXES]]
    detections = [[np.array([[1, 0, 11, 10, 0.9]]), np.array([[0, 0, 10, 10, 0.8]])]]
    matrix = confusion_matrix(annotations, detections, 2, iou_threshold=0.5, score_threshold=0.5)
    assert matrix.tolist() == [[0, 1, 0], [0, 0, 0], [1, 0, 0]]

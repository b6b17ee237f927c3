"""COCO-style detection metrics computed by pycocotools, and a confusion matrix
with a background row and column.

Both take boxes as keras-retinanet's evaluation collects them: per image, per
label, an array of ground-truth boxes ``(n, 4)`` (x1, y1, x2, y2 in pixels)
and an array of detections ``(n, 5)`` (the box and its score).

- ``coco_metrics``: mAP@[.5:.95] (AP averaged over the IoU thresholds 0.50,
  0.55, ..., 0.95), AP50 and AP75, overall and per class, exactly as
  ``pycocotools.cocoeval.COCOeval`` computes them (101-point interpolated
  precision, at most ``max_detections`` per image). A class without boxes has
  no AP (None) and is left out of the means, as pycocotools does.
- ``confusion_matrix``: detections scoring at least ``score_threshold`` are
  matched one to one to ground-truth boxes of any class, highest IoU first,
  when their IoU reaches ``iou_threshold``. Rows are the true class, columns
  the predicted class; the last row and column are "background": a box nobody
  found (missed) and a detection of nothing (false alarm).
"""
import contextlib
import io

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from detflow.lib.metrics.boxes import iou_matrix

BACKGROUND = "background"
IOU_THRESHOLDS = {"mAP_50_95": None, "AP50": 0.5, "AP75": 0.75}  # None: the mean over all ten thresholds


def _coco_datasets(annotations, detections, num_classes):
    """pycocotools' ground truth (a COCO object) and its detection list, boxes as [x, y, width, height]."""
    images, truths, results = [], [], []
    for image_id, (image_boxes, image_detections) in enumerate(zip(annotations, detections)):
        images.append({"id": image_id})
        for label in range(num_classes):
            for x1, y1, x2, y2 in np.asarray(image_boxes[label]).reshape(-1, 4):
                truths.append({"id": len(truths) + 1, "image_id": image_id, "category_id": label,
                               "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                               "area": float((x2 - x1) * (y2 - y1)), "iscrowd": 0})
            for x1, y1, x2, y2, score in np.asarray(image_detections[label]).reshape(-1, 5):
                results.append({"image_id": image_id, "category_id": label, "score": float(score),
                                "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]})
    ground_truth = COCO()
    ground_truth.dataset = {"images": images, "annotations": truths,
                            "categories": [{"id": label} for label in range(num_classes)]}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        ground_truth.createIndex()
    return ground_truth, results


def coco_metrics(annotations, detections, class_names, max_detections):
    """{"overall": {mAP_50_95, AP50, AP75}, "classes": {name: {mAP_50_95, AP50, AP75}}}; None where undefined."""
    num_classes = len(class_names)
    undefined = {key: None for key in IOU_THRESHOLDS}
    ground_truth, results = _coco_datasets(annotations, detections, num_classes)
    if not annotations or not ground_truth.dataset["annotations"]:
        return {"overall": dict(undefined), "classes": {name: dict(undefined) for name in class_names}}
    with contextlib.redirect_stdout(io.StringIO()):
        found = ground_truth.loadRes(results) if results else COCO()
        if not results:  # pycocotools cannot load an empty result list: an empty index instead
            found.dataset = {"images": ground_truth.dataset["images"], "annotations": [],
                             "categories": ground_truth.dataset["categories"]}
            found.createIndex()
        evaluation = COCOeval(ground_truth, found, "bbox")
        evaluation.params.maxDets = [1, 10, max_detections]
        evaluation.evaluate()
        evaluation.accumulate()
    # precision[iou, recall, class, area, max detections]: all areas, the most detections; -1 = no boxes.
    precision = evaluation.eval["precision"][:, :, :, 0, -1]
    thresholds = np.asarray(evaluation.params.iouThrs)

    def average(class_index, iou):
        values = precision if iou is None else precision[[int(np.argmin(np.abs(thresholds - iou)))]]
        values = values[:, :, class_index] if class_index is not None else values
        values = values[values > -1]
        return float(values.mean()) if values.size else None

    per_class = {name: {key: average(label, iou) for key, iou in IOU_THRESHOLDS.items()}
                 for label, name in enumerate(class_names)}
    overall = {key: average(None, iou) for key, iou in IOU_THRESHOLDS.items()}
    return {"overall": overall, "classes": per_class}


def confusion_matrix(annotations, detections, num_classes, iou_threshold, score_threshold):
    """(num_classes + 1) square counts: [true class or background, predicted class or background]."""
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=int)
    for image_boxes, image_detections in zip(annotations, detections):
        truth = [(label, box) for label in range(num_classes) for box in np.asarray(image_boxes[label]).reshape(-1, 4)]
        found = [(label, row[:4]) for label in range(num_classes)
                 for row in np.asarray(image_detections[label]).reshape(-1, 5) if row[4] >= score_threshold]
        matched_truth, matched_found = set(), set()
        if truth and found:
            ious = iou_matrix([box for _, box in truth], [box for _, box in found])
            # Highest IoU first, each box and each detection used once.
            for index in np.argsort(-ious, axis=None, kind="stable"):
                row, column = np.unravel_index(index, ious.shape)
                if ious[row, column] < iou_threshold:
                    break
                if row in matched_truth or column in matched_found:
                    continue
                matched_truth.add(row)
                matched_found.add(column)
                matrix[truth[row][0], found[column][0]] += 1
        for row, (label, _) in enumerate(truth):
            if row not in matched_truth:
                matrix[label, num_classes] += 1
        for column, (label, _) in enumerate(found):
            if column not in matched_found:
                matrix[num_classes, label] += 1
    return matrix

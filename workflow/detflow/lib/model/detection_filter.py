"""keras-retinanet's detection filter (its ``FilterDetections`` layer) outside the network, for the
exported models (:mod:`detflow.lib.model.runtimes`), which stop at the raw boxes and class scores.

ONNX and TFLite stumble on ``FilterDetections`` (a ``map_fn`` over the batch of
per-class ``non_max_suppression`` calls with data-dependent shapes), so every
exported format carries the network up to the decoded, clipped boxes and the
class scores, and this one function does the rest, the same for all of them:
per class, boxes scoring above the model's score threshold, OpenCV's greedy
non-maximum suppression at the model's IoU threshold, then the best
``max_detections`` over all classes. The settings are the model's own
(its description's ``detection``: what convert_model was given).
"""
import cv2
import numpy as np

# keras-retinanet's convert_model defaults, for a description that names no detection settings.
LIBRARY_DETECTION = {"nms": True, "nms_threshold": 0.5, "score_threshold": 0.05, "max_detections": 300}


def filter_detections(boxes, classification, settings, score_threshold=0.0):
    """(boxes, scores, labels) of one image, best first, as FilterDetections keeps them, restricted to
    scores >= ``score_threshold``.

    ``boxes``: (anchors, 4) x1 y1 x2 y2; ``classification``: (anchors, classes). Dropping the boxes
    below ``score_threshold`` before suppression changes nothing above it (a box only suppresses
    lower-scoring ones) and saves most of the work.
    """
    settings = {**LIBRARY_DETECTION, **(settings or {})}
    floor, chosen = settings["score_threshold"], []
    for label in range(classification.shape[1]):
        scores = classification[:, label]
        candidates = np.flatnonzero((scores > floor) & (scores >= score_threshold))  # FilterDetections: strictly above
        if settings["nms"] and len(candidates) > 1:
            corners = boxes[candidates].astype(np.float64)
            sizes = np.concatenate([corners[:, :2], corners[:, 2:] - corners[:, :2]], axis=1)  # OpenCV: x, y, w, h
            kept = cv2.dnn.NMSBoxes(sizes, scores[candidates].astype(np.float32), floor, settings["nms_threshold"])
            candidates = candidates[np.asarray(kept, dtype=np.int64).reshape(-1)]
        chosen.extend((index, label) for index in candidates)
    if not chosen:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32)
    indices, labels = (np.array(column) for column in zip(*chosen))
    scores = classification[indices, labels]
    best = np.argsort(-scores, kind="stable")[:settings["max_detections"]]
    return boxes[indices[best]], scores[best], labels[best].astype(np.int32)

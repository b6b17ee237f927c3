"""What "the same detections" means, once for every comparison: batch sizes, runtimes (Keras,
SavedModel, ONNX, TFLite), the tutorial's loop against the predict stage.

Two runs of one model agree when, image by image, each detection of one is
matched by a detection of the other of the same class (greedy, best score
first, the unmatched box of that class with the highest IoU, at least
MATCH_IOU), with corners within COORDINATE_TOLERANCE pixels and scores within
SCORE_TOLERANCE. A detection whose score lies within SCORE_TOLERANCE of the
score threshold may be found on one side only: a score change that small moves
it across the threshold. Floating-point order differs between batch sizes,
thread counts and runtimes, so bit-identical output is not the question; the
comparison reports the largest differences found, and whether they are within
these tolerances.
"""
from dataclasses import dataclass

import numpy as np

from detflow.lib.metrics.boxes import iou_matrix

COORDINATE_TOLERANCE = 1.0  # pixels, on each box corner coordinate in the original image
SCORE_TOLERANCE = 0.01
MATCH_IOU = 0.5  # a box must overlap its counterpart at least this much to be matched


@dataclass(frozen=True)
class Differences:
    """The largest differences between two runs' detections over a set of images."""

    images: int = 0
    matched: int = 0
    max_coordinate: float = 0.0  # pixels
    max_score: float = 0.0
    unmatched: int = 0  # detections on one side only, scoring clearly above the threshold
    near_threshold: int = 0  # detections on one side only, within SCORE_TOLERANCE of the threshold

    @property
    def within_tolerance(self):
        return (self.unmatched == 0 and self.max_coordinate <= COORDINATE_TOLERANCE
                and self.max_score <= SCORE_TOLERANCE)

    def __str__(self):
        verdict = "within" if self.within_tolerance else "NOT within"
        return (f"{self.images} images, {self.matched} detections matched; largest differences: box corner "
                f"{self.max_coordinate:.3g} px, score {self.max_score:.3g}; {self.unmatched} unmatched"
                f"{f' (+{self.near_threshold} at the threshold)' if self.near_threshold else ''} -> {verdict} "
                f"tolerance ({COORDINATE_TOLERANCE:g} px, score {SCORE_TOLERANCE:g}, unmatched 0)")

    def __add__(self, other):
        return Differences(self.images + other.images, self.matched + other.matched,
                           max(self.max_coordinate, other.max_coordinate), max(self.max_score, other.max_score),
                           self.unmatched + other.unmatched, self.near_threshold + other.near_threshold)


def _fields(detection):
    """(class, score, box) of a Detection or of its JSON form ({"class", "score", "box"})."""
    if isinstance(detection, dict):
        return detection["class"], float(detection["score"]), np.asarray(detection["box"], dtype=np.float64)
    return detection.name, float(detection.score), np.asarray(detection.box, dtype=np.float64)


def compare_image(reference, candidate, score_threshold):
    """Differences between two lists of detections of one image."""
    reference, candidate = [_fields(item) for item in reference], [_fields(item) for item in candidate]
    free = list(range(len(candidate)))
    matched, max_coordinate, max_score, lone = 0, 0.0, 0.0, []
    for name, score, box in sorted(reference, key=lambda item: -item[1]):
        same_class = [index for index in free if candidate[index][0] == name]
        if same_class:
            overlaps = iou_matrix(box, np.stack([candidate[index][2] for index in same_class]))[0]
            best = int(np.argmax(overlaps))
            if overlaps[best] >= MATCH_IOU:
                other = candidate[same_class[best]]
                free.remove(same_class[best])
                matched += 1
                max_coordinate = max(max_coordinate, float(np.abs(box - other[2]).max()))
                max_score = max(max_score, abs(score - other[1]))
                continue
        lone.append(score)
    lone += [candidate[index][1] for index in free]
    near = sum(1 for score in lone if score < score_threshold + SCORE_TOLERANCE)
    return Differences(1, matched, max_coordinate, max_score, len(lone) - near, near)


def compare(reference_images, candidate_images, score_threshold):
    """Differences between two runs over the same images (one list of detections per image, in order)."""
    if len(reference_images) != len(candidate_images):
        raise ValueError(f"cannot compare detections of {len(reference_images)} and {len(candidate_images)} images")
    total = Differences()
    for reference, candidate in zip(reference_images, candidate_images):
        total += compare_image(reference, candidate, score_threshold)
    return total

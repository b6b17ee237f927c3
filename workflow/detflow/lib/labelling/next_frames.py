"""Which frames a person should label next, chosen by the model: the frames it is least sure about, spread
over what the videos show.

Uncertainty of a frame, from the model's own detections (every box scoring at least the model's floor,
keras-retinanet's 0.05):

- score entropy: a box scored near 0.5 is one the model cannot decide on (the binary entropy of its
  score, at most 1); the frame takes its least decided box, as uncertainty sampling for detection does
  (Brust et al., "Active learning for deep object detection", 2019: the maximum over boxes);
- mirror disagreement: the frame and its mirror image should give the same boxes. Each box of one view is
  matched with the other view's box of its class that overlaps it most; a box without a match counts its
  score, a matched pair counts 1 - IoU x (1 - score difference), weighted by the pair's higher score. This
  is the consistency criterion of CALD (Yu et al., "Consistency-based active learning for object
  detection", 2022), with the flip as the augmentation.

The uncertainty is the mean of the two, with a small floor so that a frame where the model sees nothing
at all can still be chosen for being new. Novelty is the distance of a frame's point (its thumbnail and
time: :mod:`detflow.lib.labelling.frame_points`) to the nearest frame of its video labelled or chosen
already: the core-set view (Sener and Savarese, 2018) on a description that does not depend on the few
labels the model has seen. Frames are taken greedily by uncertainty x novelty, the novelty updated after
each pick, so that twenty near-identical uncertain frames are not all taken (uncertainty-weighted
diversity, as in Zhdanov's "Diverse mini-batch active learning", 2019).
"""
from dataclasses import dataclass

import numpy as np

from detflow.lib.metrics.boxes import iou_matrix

UNCERTAINTY_FLOOR = 0.05  # what a frame without any box counts as: it may still be chosen for being new


def binary_entropy(scores):
    """Entropy of each score as a yes/no probability, in bits (0 for 0 or 1, 1 for 0.5)."""
    p = np.clip(np.asarray(scores, float), 1e-6, 1 - 1e-6)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def score_entropy(scores):
    """The least decided box of a frame: the largest binary entropy of its scores (0 without boxes)."""
    return float(binary_entropy(scores).max()) if len(scores) else 0.0


def mirrored(boxes, width):
    """Boxes (x1, y1, x2, y2) of a mirrored image, in the original image's coordinates."""
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    return np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], axis=1)


def _one_way(boxes, scores, labels, other_boxes, other_scores, other_labels):
    """Disagreement of each box of one view with the other view's boxes."""
    values = []
    for box, score, label in zip(boxes, scores, labels):
        same = np.flatnonzero(other_labels == label)
        if not len(same):
            values.append(score)
            continue
        overlaps = iou_matrix(box, other_boxes[same])[0]
        best = int(np.argmax(overlaps))
        partner = other_scores[same[best]]
        values.append(max(score, partner) * (1 - overlaps[best] * (1 - abs(score - partner))))
    return values


def mirror_disagreement(view, mirror_view):
    """How much the boxes of a frame and of its mirror image (mapped back) disagree, 0 to 1: the largest
    disagreement of any box of either view. A view is (boxes, scores, labels) as arrays."""
    boxes, scores, labels = (np.asarray(item) for item in view)
    other_boxes, other_scores, other_labels = (np.asarray(item) for item in mirror_view)
    values = (_one_way(boxes.reshape(-1, 4), scores, labels, other_boxes.reshape(-1, 4), other_scores, other_labels)
              + _one_way(other_boxes.reshape(-1, 4), other_scores, other_labels, boxes.reshape(-1, 4), scores,
                         labels))
    return float(max(values, default=0.0))


def uncertainty(entropy, disagreement):
    """A frame's uncertainty from its two measures, between UNCERTAINTY_FLOOR and 1."""
    return UNCERTAINTY_FLOOR + (1 - UNCERTAINTY_FLOOR) * (entropy + disagreement) / 2


def _nearest_distance(points, others):
    """Each point's distance to the nearest of ``others`` (|a - b|^2 = |a|^2 + |b|^2 - 2 a.b: no n x m x d
    array for thousands of frames)."""
    squared = (np.sum(points ** 2, axis=1)[:, None] + np.sum(others ** 2, axis=1)[None, :] - 2 * points @ others.T)
    return np.sqrt(np.maximum(squared.min(axis=1), 0))


@dataclass(frozen=True)
class Pick:
    """A chosen frame: its index among the candidates, and why: uncertainty x novelty = score."""

    index: int
    uncertainty: float
    novelty: float
    score: float


def choose(uncertainties, points, known_points, count):
    """Greedily pick ``count`` candidates by uncertainty x novelty, the novelty (distance of a candidate's
    point to the nearest point known or picked) updated after each pick. Returns the Picks in order."""
    uncertainties = np.asarray(uncertainties, float)
    points = np.asarray(points, float)
    known = np.asarray(known_points, float).reshape(-1, points.shape[1])
    novelty = _nearest_distance(points, known) if len(known) else np.ones(len(points))
    picks, free = [], np.ones(len(points), bool)
    while len(picks) < min(count, len(points)):
        scores = np.where(free, uncertainties * novelty, -np.inf)
        best = int(np.argmax(scores))
        picks.append(Pick(best, float(uncertainties[best]), float(novelty[best]), float(scores[best])))
        free[best] = False
        novelty = np.minimum(novelty, np.linalg.norm(points - points[best], axis=1))
    return picks

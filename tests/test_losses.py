"""The GIoU box loss (detflow.lib.model.losses): checked against hand-worked
values, against IoU computed in pixels by keras-retinanet's own code for real
anchors, and in a real training run that resumes and converts."""
import numpy as np
import pytest
from keras_retinanet.utils.anchors import bbox_transform
from keras_retinanet.utils.compute_overlap import compute_overlap
from test_train import run_training

from detflow.lib.model import losses as box_losses
from helpers.models import BACKBONE


def giou_of(boxes, other):
    return box_losses.generalized_iou(np.array(boxes, "float32"), np.array(other, "float32")).numpy()


def test_generalized_iou_by_hand():
    # identical; half overlapping (IoU 1/3, enclosing = union); apart (IoU 0, enclosing 3 x 1, union 2);
    # a predicted box with crossed corners counts as empty: IoU 0, enclosing box = the true box, GIoU 0.
    values = giou_of([[0, 0, 2, 2], [0, 0, 2, 1], [0, 0, 1, 1], [1, 1, 0, 0]],
                     [[0, 0, 2, 2], [1, 0, 3, 1], [2, 0, 3, 1], [0, 0, 1, 1]])
    assert values == pytest.approx([1.0, 1 / 3, -1 / 3, 0.0], abs=1e-6)


def loss_of(targets, predictions, states):
    """The loss on one image: rows (4 offsets) with their anchor states, as the generators write them."""
    y_true = np.concatenate([targets, np.array(states, "float32")[:, None]], axis=1)[None].astype("float32")
    return float(box_losses.giou()(y_true, np.array(predictions, "float32")[None]))


def test_loss_from_offsets_equals_giou_in_pixels_for_real_anchors():
    """Offsets are keras-retinanet's (bbox_transform, std 0.2) for anchors of other widths and heights than the
    boxes: GIoU in anchor units equals GIoU in pixels, computed here with the library's compute_overlap."""
    anchors = np.array([[10, 20, 42, 84], [100, 50, 164, 82], [0, 0, 45, 45]], "float64")
    truth = np.array([[12, 18, 40, 90], [96, 40, 150, 88], [5, 3, 50, 41]], "float64")
    predicted = np.array([[14, 25, 44, 80], [110, 45, 160, 80], [0, 10, 40, 40]], "float64")
    targets, outputs = bbox_transform(anchors, truth), bbox_transform(anchors, predicted)
    iou = np.diag(compute_overlap(predicted, truth))
    outer = np.maximum(predicted[:, 2:], truth[:, 2:]) - np.minimum(predicted[:, :2], truth[:, :2])
    enclosing = outer[:, 0] * outer[:, 1]
    area = (predicted[:, 2] - predicted[:, 0]) * (predicted[:, 3] - predicted[:, 1]) \
        + (truth[:, 2] - truth[:, 0]) * (truth[:, 3] - truth[:, 1])
    union = area / (1 + iou)  # intersection = iou x union = area - union
    pixels = iou - (enclosing - union) / enclosing
    expected = box_losses.GIOU_WEIGHT * np.mean(1 - pixels)
    assert loss_of(targets, outputs, [1, 1, 1]) == pytest.approx(expected, rel=1e-5)


def test_only_positive_anchors_count():
    good, bad = [0, 0, 0, 0], [3, 3, -3, -3]
    # A wrong box on a negative (0) or ignored (-1) anchor costs nothing; the positive one is exact.
    assert loss_of(np.zeros((3, 4)), [good, bad, bad], [1, 0, -1]) == pytest.approx(0.0, abs=1e-6)
    # No positive anchor at all: zero, not a division by zero.
    assert loss_of(np.zeros((2, 4)), [bad, bad], [0, -1]) == 0.0


def test_training_with_giou_resumes_and_converts(voc, tmp_path):
    from detflow import convert

    work = tmp_path / "work"
    summary = run_training(voc, work, epochs=1, box_loss="giou")
    assert summary["optimizer_iterations"] > 0
    summary = run_training(voc, work, epochs=2, box_loss="giou")
    assert summary["resumed_from"]["epoch"] == 1
    snapshot = sorted((work / "snapshots").glob("*.h5"))[-1]
    assert convert.load_training_model(snapshot, BACKBONE).loss["regression"].__name__ == "_giou"

"""Box-regression losses for keras-retinanet's training model, passed through ``compile``.

keras-retinanet regresses each positive anchor's corners as offsets in units of
the anchor's width and height divided by ``REGRESSION_STD`` (its
``bbox_transform``), and compares them with a smooth L1 loss. ``giou`` instead
scores the predicted box by its generalised IoU with the true box (Rezatofighi
et al., 2019), which rewards overlap directly. It needs no anchors: in units of
the anchor's width and height the anchor is the unit square, a box is
``(t_x1, t_y1, 1 + t_x2, 1 + t_y2) * std`` offsets from it, and IoU and GIoU do
not change when the two axes are scaled, so the loss can be computed from the
regression targets and outputs alone, with the generators' targets unchanged.
"""
import tensorflow as tf
from keras_retinanet import losses

REGRESSION_STD = 0.2  # keras-retinanet's bbox_transform and RegressBoxes default
GIOU_WEIGHT = 2.0  # the regression weight of mmdetection's RetinaNet with a GIoU loss


def _unit_anchor_boxes(offsets):
    """Boxes (x1, y1, x2, y2) relative to their anchor taken as the unit square."""
    scaled = offsets * REGRESSION_STD
    return tf.stack([scaled[:, 0], scaled[:, 1], 1.0 + scaled[:, 2], 1.0 + scaled[:, 3]], axis=1)


def generalized_iou(boxes, other):
    """GIoU of row-aligned boxes (x1, y1, x2, y2); a predicted box whose corners cross counts as empty."""
    area = tf.maximum(boxes[:, 2] - boxes[:, 0], 0.0) * tf.maximum(boxes[:, 3] - boxes[:, 1], 0.0)
    other_area = (other[:, 2] - other[:, 0]) * (other[:, 3] - other[:, 1])
    inner = tf.maximum(tf.minimum(boxes[:, 2:], other[:, 2:]) - tf.maximum(boxes[:, :2], other[:, :2]), 0.0)
    intersection = inner[:, 0] * inner[:, 1]
    union = area + other_area - intersection
    outer = tf.maximum(boxes[:, 2:], other[:, 2:]) - tf.minimum(boxes[:, :2], other[:, :2])
    enclosing = outer[:, 0] * outer[:, 1]
    iou = intersection / tf.maximum(union, 1e-9)
    return iou - (enclosing - union) / tf.maximum(enclosing, 1e-9)


def giou():
    """Loss functor: ``GIOU_WEIGHT`` x mean of 1 - GIoU over the positive anchors (keras-retinanet's
    normaliser, at least 1), ignoring negative and ignored anchors as its smooth L1 does."""

    def _giou(y_true, y_pred):
        positive = tf.where(tf.equal(y_true[:, :, -1], 1))
        predicted = _unit_anchor_boxes(tf.gather_nd(y_pred, positive))
        target = _unit_anchor_boxes(tf.gather_nd(y_true[:, :, :-1], positive))
        normalizer = tf.cast(tf.maximum(1, tf.shape(positive)[0]), y_pred.dtype)
        return GIOU_WEIGHT * tf.reduce_sum(1.0 - generalized_iou(predicted, target)) / normalizer

    return _giou


def box_loss(name):
    """The regression loss named in config (``train.box_loss``)."""
    return {"smooth_l1": losses.smooth_l1, "giou": giou}[name]()


def custom_losses():
    """The box losses a compiled snapshot names, for loading it with keras-retinanet's ``models.load_model``,
    whose custom objects name only its smooth L1 and focal losses."""
    return {"_giou": giou()}

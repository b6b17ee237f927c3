"""The exported model's graph: a BGR image as the person has it in, the model's final detections out,
so that an export stands alone (no detflow, keras-retinanet or OpenCV beside it).

The graph does, in TensorFlow operations that tf2onnx and the TFLite converter translate into their
own builtin operators, what :mod:`detflow.lib.inference.detector` does around the Keras model:

1. keras-retinanet's ``resize_image``: scale = min_side / shorter side, capped so that the longer
   side is at most max_side; the new size rounded as ``cv2.resize(fx=scale, fy=scale)`` rounds it,
   and OpenCV's bilinear sampling at that scale (source pixel ``(x + 0.5) / scale - 0.5``, clamped at
   the edges), written out as gathers: TensorFlow's own resize spaces its samples by the ratio of the
   rounded sizes instead, up to a source pixel away from OpenCV's at the far edge.
2. keras-retinanet's preprocessing: the backbone's own ``preprocess_image`` is a per-channel affine
   map ``a * x + b`` for every keras-retinanet backbone (``caffe``: minus the ImageNet mean, ``tf``:
   to [-1, 1]), found by running it on two constant images and checked on a random one, so no
   constant is copied from the library. keras-retinanet applies it before resizing; both are linear,
   so after the resize it gives the same up to float rounding, on fewer pixels.
3. the network up to its decoded boxes and class scores, and keras-retinanet's ``ClipBoxes`` on the
   boxes, with the resized image's size taken from the graph: the layer reads it from its input's
   shape, and TFLite's converter, when it quantises the convolutions, then clips x at the height
   (measured on the demo model: int8 test mAP@[.5:.95] 0.658 against 0.799 with this clip);
4. its last layer's filter (``FilterDetections``), with that layer's own settings: per class, boxes
   scoring above its score threshold, non-maximum suppression at its IoU threshold keeping at most
   max_detections, then the best max_detections over all classes. The classes are a static loop
   (each one NonMaxSuppression operator in ONNX, NON_MAX_SUPPRESSION_V4 in TFLite). TFLite's
   operator always returns max_output_size indices, padded, and the converter's translation of
   TensorFlow's unpadded form keeps the padding (repeated boxes): the padded form is used and cut to
   its count of valid indices, which every runtime honours.
5. the boxes divided by the scale: x1 y1 x2 y2 in the input image's pixels.

Input ``image``: uint8, [1, height, width, 3], BGR (what cv2.imread and video decoders give), any
height and width. Outputs: ``boxes`` [N, 4] float32, ``scores`` [N] float32 (best first), ``labels`` [N]
int32. The sizes are computed in float32 (TFLite has no float64 arithmetic): where the exact size is
half-way between two integers (8 of 173,808 image sizes tried, for four min/max side pairs), it may
round the other way than OpenCV's float64 does, a resize one pixel larger or smaller.
"""
import dataclasses

import numpy as np
import tensorflow as tf
import tf_keras

from detflow.lib.cli import InputError
from detflow.lib.model import retinanet
from detflow.lib.model.card import REBUILD

INPUT, OUTPUTS = "image", ("boxes", "scores", "labels")
FILTER_LAYER = "filtered_detections"  # keras-retinanet's name for the inference model's FilterDetections
DETECTION_SETTINGS = ("nms", "nms_threshold", "score_threshold", "max_detections")


def affine_preprocessing(backbone_name):
    """(a, b), float32 per channel, with ``a * x + b`` = the backbone's ``preprocess_image(x)``;
    InputError for a backbone whose preprocessing is not such a map."""
    preprocess = retinanet.backbone(backbone_name).preprocess_image
    black = preprocess(np.zeros((1, 1, 3), np.uint8))[0, 0].astype(np.float64)
    white = preprocess(np.full((1, 1, 3), 255, np.uint8))[0, 0].astype(np.float64)
    scale, offset = ((white - black) / 255).astype(np.float32), black.astype(np.float32)
    probe = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    if not np.allclose(probe * scale + offset, preprocess(probe), atol=1e-4):
        raise InputError(f"backbone {backbone_name}", "its preprocess_image is not a per-channel affine map "
                                                      "(a * x + b), which the exported graph applies")
    return scale, offset


def filter_settings(model, card, model_path):
    """The detection settings of the inference model's last layer (what its detections are); InputError
    when its description names others, or when it filters across classes (not what convert writes)."""
    config = model.get_layer(FILTER_LAYER).get_config()
    settings = {name: config[name] for name in DETECTION_SETTINGS}
    if not config["class_specific_filter"]:
        raise InputError(model_path, "filters its detections across classes (class_specific_filter false); the "
                                     "export writes keras-retinanet's per-class filter, as the convert stage makes it")
    described = {name: card.detection[name] for name in DETECTION_SETTINGS if name in card.detection}
    if any(settings[name] != value for name, value in described.items()):
        raise InputError(model_path, f"its description's detection settings {described} disagree with its last "
                                     f"layer's {settings}; {REBUILD}")
    return settings


def resize_scale(height, width, min_side, max_side):
    """keras-retinanet's ``compute_resize_scale`` of float32 image sides."""
    shorter, longer = tf.minimum(height, width), tf.maximum(height, width)
    scale = min_side / shorter
    return tf.where(longer * scale > max_side, max_side / longer, scale)


def _sampling(size_in, size_out, scale):
    """OpenCV's bilinear sampling along one axis: (lower index, upper index, upper weight) per output pixel."""
    source = tf.maximum((tf.cast(tf.range(size_out), tf.float32) + 0.5) / scale - 0.5, 0.0)
    lower = tf.floor(source)
    weight, lower = source - lower, tf.cast(lower, tf.int32)
    last = size_in - 1
    weight = tf.where(lower >= last, tf.zeros_like(weight), weight)  # past the edge: the edge pixel alone
    lower = tf.minimum(lower, last)
    return lower, tf.minimum(lower + 1, last), weight


def _along_rows(values, width):
    """``values`` of the last axis (one per channel or pixel) repeated to [1, 1, width, channels]: onnxruntime
    broadcasts a whole row about 30 times faster than a trailing axis of 3 (measured: 1.7 ms against 0.1 ms
    for an addition to a 320 x 240 image)."""
    return tf.tile(values[None, None, None, :], tf.stack([1, 1, width, 1]))


def _blend(low, high, weight):
    """OpenCV's bilinear step: low * (1 - weight) + high * weight, in float32."""
    return tf.cast(low, tf.float32) * (1 - weight) + tf.cast(high, tf.float32) * weight


def resize_like_opencv(image, scale, height, width):
    """``cv2.resize(image, None, fx=scale, fy=scale)`` (bilinear) of a [1, height, width, 3] batch, in float32."""
    new_height = tf.cast(tf.round(tf.cast(height, tf.float32) * scale), tf.int32)
    new_width = tf.cast(tf.round(tf.cast(width, tf.float32) * scale), tf.int32)
    top, bottom, down = _sampling(height, new_height, scale)
    left, right, across = _sampling(width, new_width, scale)
    rows = _blend(tf.gather(image, top, axis=1), tf.gather(image, bottom, axis=1), down[None, :, None, None])
    across = tf.tile(across[None, None, :, None], [1, 1, 1, 3])
    return _blend(tf.gather(rows, left, axis=2), tf.gather(rows, right, axis=2), across)


def clip_boxes(boxes, image_shape):
    """keras-retinanet's ``ClipBoxes`` of (anchors, 4) boxes in an image of ``image_shape`` [1, h, w, 3]:
    x within [0, w - 1], y within [0, h - 1]."""
    last = tf.cast(image_shape[1:3], tf.float32) - 1
    return tf.clip_by_value(boxes, 0.0, tf.stack([last[1], last[0], last[1], last[0]]))


def _kept_of_class(boxes, scores, settings):
    """Indices of the boxes one class keeps, as FilterDetections keeps them."""
    if not settings["nms"]:
        return tf.cast(tf.where(scores > settings["score_threshold"])[:, 0], tf.int32)
    kept, valid = tf.raw_ops.NonMaxSuppressionV4(
        boxes=boxes, scores=scores, max_output_size=settings["max_detections"],
        iou_threshold=settings["nms_threshold"], score_threshold=settings["score_threshold"],
        pad_to_max_output_size=True)
    return kept[:valid]


def filter_detections(boxes, classification, settings):
    """(boxes, scores, labels), best first, of one image's boxes (anchors, 4) and class scores (anchors,
    classes), as FilterDetections with ``settings`` filters them."""
    indices, labels = [], []
    for label in range(classification.shape[-1]):
        kept = _kept_of_class(boxes, classification[:, label], settings)
        indices.append(kept)
        labels.append(tf.fill(tf.shape(kept), label))
    indices, labels = tf.concat(indices, axis=0), tf.concat(labels, axis=0)
    scores = tf.gather_nd(classification, tf.stack([indices, labels], axis=1))
    scores, best = tf.math.top_k(scores, k=tf.minimum(settings["max_detections"], tf.size(scores)))
    return tf.gather(boxes, tf.gather(indices, best)), scores, tf.gather(labels, best)


def standalone_module(model, card, model_path):
    """(tf.Module whose ``serve`` is the standalone graph of the Keras inference ``model``, ``card`` with the
    detection settings the graph uses). The module tracks the network, so a SavedModel of it holds its
    weights."""
    settings = filter_settings(model, card, model_path)
    scale_by, offset = affine_preprocessing(card.backbone)
    network = tf_keras.Model(model.inputs, [model.get_layer("boxes").output, model.get_layer("classification").output])
    min_side, max_side = float(card.image_min_side), float(card.image_max_side)

    def detect(image):
        height, width = tf.shape(image)[1], tf.shape(image)[2]
        scale = resize_scale(tf.cast(height, tf.float32), tf.cast(width, tf.float32), min_side, max_side)
        resized = resize_like_opencv(image, scale, height, width)  # then preprocessed: the same, as both are linear
        width_now = tf.shape(resized)[2]
        prepared = resized * _along_rows(scale_by, width_now) + _along_rows(offset, width_now)
        boxes, classification = network(prepared, training=False)
        boxes, scores, labels = filter_detections(clip_boxes(boxes[0], tf.shape(resized)), classification[0], settings)
        return dict(zip(OUTPUTS, (boxes / scale, scores, labels)))

    module = tf.Module()
    module.network = network
    module.serve = tf.function(detect, input_signature=[tf.TensorSpec((1, None, None, 3), tf.uint8, name=INPUT)])
    return module, dataclasses.replace(card, detection={**card.detection, **settings})

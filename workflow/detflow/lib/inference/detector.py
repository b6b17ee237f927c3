"""Using a trained detector: loading an inference model and checking it against
its own description, and detecting objects in images and video frames.

Preprocessing is keras-retinanet's, exactly as its examples use it: a BGR image
(``read_image_bgr`` for a file; a decoded video frame already is BGR), the
backbone's ``preprocess_image``, ``resize_image`` to the model's training image
sizes, the model, then the boxes divided by the resize scale. Boxes come in
the original image's pixel coordinates (0-based, as keras-retinanet's).

Speed without changing a single detection: images are decoded and preprocessed
in a background thread while the model runs, and images of the same size go
through the model in batches by one compiled function.

The same Detector runs the model exported for another runtime (``--runtime
tf|onnx|tflite``, :mod:`detflow.lib.model.runtimes`). An export resizes and
preprocesses the image inside its own graph and returns boxes in the image's
pixels, so the Detector hands it the image as it is; its detections agree with
the Keras model's as :mod:`detflow.lib.metrics.detection_match` defines it.
"""
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from keras_retinanet.utils.image import read_image_bgr, resize_image

from detflow.lib.cli import InputError
from detflow.lib.data.voc_tree import read_classes
from detflow.lib.inference.background import in_background
from detflow.lib.model import retinanet
from detflow.lib.model.card import REBUILD, check_classes, check_options, read_card
from detflow.lib.model.device import setup_device
from detflow.lib.model.runtimes import ExportedModel, load_exported

log = logging.getLogger(__name__)

# A layer found only in one backbone family names the family of a foreign model.
BACKBONE_MARKERS = {"res2a_branch2a": "ResNet", "conv_dw_1": "MobileNet", "block1_conv1": "VGG",
                    "conv1/conv": "DenseNet"}


@dataclass(frozen=True)
class Detection:
    """One box in the original image's pixel coordinates (0-based, x1 y1 top left, x2 y2 bottom right)."""

    label: int
    name: str
    score: float
    box: tuple

    def as_dict(self):
        return {"class": self.name, "score": round(self.score, 4), "box": [round(value, 2) for value in self.box]}

    def as_row(self):
        return [self.name, f"{self.score:.4f}", *(f"{value:.2f}" for value in self.box)]


def _weight_shapes(model):
    """{layer name: [weight shapes]} of every layer that has weights."""
    return {layer.name: [tuple(weight.shape) for weight in layer.weights] for layer in model.layers if layer.weights}


def _backbone_difference(model, backbone_name, num_classes, feature_size, head_norm):
    """Why ``model`` is not a RetinaNet on ``backbone_name`` (None when it is one), found by
    comparing its layers with a freshly built model of that configuration."""
    with warnings.catch_warnings():  # Keras warns about reusing unseeded initialisers: these weights are never used
        warnings.simplefilter("ignore", UserWarning)
        expected = _weight_shapes(retinanet.build_retinanet(backbone_name, num_classes, feature_size, head_norm))
    found = _weight_shapes(model)
    missing = [name for name in expected if name not in found]  # in the model's order: backbone first
    reshaped = [name for name in expected if name in found and expected[name] != found[name]]
    if not missing and not reshaped and len(found) == len(expected):
        return None
    family = next((family for marker, family in BACKBONE_MARKERS.items() if marker in found), None)
    details = []
    if missing:
        details.append(f"{len(missing)} of its layers are missing (e.g. {missing[0]})")
    if reshaped:
        details.append(f"{len(reshaped)} layers have other shapes (e.g. {reshaped[0]}: {found[reshaped[0]][0]} "
                       f"instead of {expected[reshaped[0]][0]})")
    if not details:
        details.append(f"it has {len(found)} layers with weights instead of {len(expected)}")
    guess = f"; its layers look like a {family} backbone" if family else ""
    return f"{', '.join(details)}{guess}"


def load_inference_model(path, card):
    """The converted (inference) model at ``path``, checked against its own description ``card``:
    backbone, FPN/head width and number of classes. InputError names any difference."""
    path = Path(path)
    backbone_name, feature_size, num_classes = card.backbone, card.feature_size, len(card.classes)
    try:
        model = retinanet.load_model(path, backbone_name)
    except Exception as error:  # h5py, Keras deserialisation and custom objects fail in many ways; all mean one thing
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if len(reason) > 160:
            reason = reason[:160] + " ..."
        raise InputError(path, f"cannot be loaded as a keras-retinanet model on backbone {backbone_name}, as its "
                               f"description says ({reason}); {REBUILD}")
    if {"regression", "classification"} <= set(model.output_names):
        raise InputError(path, "is a training model (outputs regression and classification), not an inference "
                               "model: convert it first (the convert stage, keras-retinanet's convert_model)")
    if len(model.outputs) < 3:
        raise InputError(path, f"is not a keras-retinanet inference model (outputs {', '.join(model.output_names)})")
    try:
        width = retinanet.feature_size_of(model)
        classes_out = int(model.get_layer("classification").output.shape[-1])
    except ValueError as error:  # no layer P3 or classification
        raise InputError(path, f"is not a keras-retinanet RetinaNet ({error})")
    if width != feature_size:
        raise InputError(path, f"its FPN and heads are {width} channels wide, but its description says {feature_size}: "
                               "the description does not belong to this model")
    if classes_out != num_classes:
        raise InputError(path, f"predicts {classes_out} classes, but its description names {num_classes}: "
                               "the description does not belong to this model")
    difference = _backbone_difference(model, backbone_name, num_classes, feature_size, card.head_norm)
    if difference:
        raise InputError(path, f"is not a RetinaNet on backbone {backbone_name}, as its description says: {difference}")
    log.info("model %s: %s backbone, FPN and heads %d wide, classes %s, images %d-%d px", path, backbone_name, width,
             ", ".join(card.classes), card.image_min_side, card.image_max_side)
    return model


def _keras_detections(model):
    """The inference model's detections as ExportedModel.detections gives them; its last layer
    (FilterDetections) has filtered them, padding with score -1."""
    # One traced graph per input shape, called without predict_on_batch's per-call overhead.
    predict = tf.function(lambda batch: model(batch, training=False), reduce_retracing=True)

    def detections(inputs, score_threshold):
        batch = np.stack(inputs)
        boxes, scores, labels = (output.numpy() for output in predict(tf.constant(batch))[:3])
        results = []
        for index in range(len(batch)):
            keep = np.flatnonzero(scores[index] >= score_threshold)
            keep = keep[np.argsort(-scores[index][keep], kind="stable")]
            results.append((boxes[index, keep], scores[index, keep], labels[index, keep]))
        return results

    return detections


def frame_reader(model, card):
    """A function from a BGR image to what the Keras inference ``model`` makes of it: its boxes (in the
    image's pixels), scores and labels, every one the model returns (scores at least its floor)."""
    preprocess = retinanet.backbone(card.backbone).preprocess_image
    run = tf.function(lambda batch: model(batch, training=False), reduce_retracing=True)

    def read(image):
        network_input, scale = resize_image(preprocess(image), min_side=card.image_min_side,
                                            max_side=card.image_max_side)
        boxes, scores, labels = (output.numpy()[0] for output in run(tf.constant(network_input[None]))[:3])
        kept = scores >= 0  # FilterDetections pads with -1
        return boxes[kept] / scale, scores[kept], labels[kept]

    return read


class Detector:
    """A model for batches of BGR images: the Keras inference model with keras-retinanet's preprocessing,
    or an ExportedModel on its own runtime, which preprocesses them itself."""

    def __init__(self, model, card, *, score_threshold):
        self.card = card
        self.preprocess_image = retinanet.backbone(card.backbone).preprocess_image
        self.names = dict(enumerate(card.classes))
        self.image_min_side, self.image_max_side = card.image_min_side, card.image_max_side
        self.score_threshold = score_threshold
        self.runtime = model.runtime if isinstance(model, ExportedModel) else "keras"
        self._detections = model.detections if isinstance(model, ExportedModel) else _keras_detections(model)

    def prepare(self, image):
        """(network input, scale) of a BGR image: keras-retinanet's preprocessing for the Keras model; the image
        itself for an export, whose graph resizes and preprocesses it and returns boxes in its pixels."""
        if self.runtime != "keras":
            return image, 1.0
        return resize_image(self.preprocess_image(image), min_side=self.image_min_side, max_side=self.image_max_side)

    def detect(self, inputs, scales):
        """Detections (score >= threshold, best first) of prepared inputs of one shape, one list per input."""
        results = []
        for (boxes, scores, labels), scale in zip(self._detections(inputs, self.score_threshold), scales):
            results.append([Detection(int(label), self.names[int(label)], float(score),
                                      tuple(float(value) for value in box / scale))
                            for box, score, label in zip(boxes, scores, labels)])
        return results


def _check_description(card, path, dataset_classes, class_names, checks):
    """Refuse a model whose description disagrees with what the caller expects of it."""
    check_options(card, path, checks or {})
    if dataset_classes:
        check_classes(card, path, read_classes(dataset_classes), f"the dataset ({dataset_classes})")
    if class_names:
        check_classes(card, path, class_names, "config.yaml's classes")


def load_checked_model(path, *, threads=None, dataset_classes=None, class_names=None, checks=None):
    """(description, checked Keras model) of the inference model at ``path``, with the device set up first
    (TensorFlow's threads and GPU memory growth must be set before the model exists). ``dataset_classes``:
    the classes.json of a dataset the model must have been trained for; ``class_names``: the classes it
    must have, in label order; ``checks``: {option: value or None} of options that describe the model and
    must agree with it (``image_min_side``, ...)."""
    card = read_card(path)
    _check_description(card, path, dataset_classes, class_names, checks)
    setup_device(threads)
    return card, load_inference_model(path, card)


def load_detector(path, *, score_threshold, runtime="keras", threads=None, dataset_classes=None, class_names=None,
                  checks=None):
    """The model at ``path`` on its runtime (the .h5 for ``keras``, an export for the others), checked as
    :func:`load_checked_model` checks it, wrapped in a Detector."""
    if runtime == "keras":
        card, model = load_checked_model(path, threads=threads, dataset_classes=dataset_classes,
                                         class_names=class_names, checks=checks)
    else:
        if runtime == "tf":
            setup_device(threads)
        model = load_exported(path, runtime, threads)
        card = model.card
        _check_description(card, model.path, dataset_classes, class_names, checks)
    return Detector(model, card, score_threshold=score_threshold)


def detect_stream(detector, items, batch_size):
    """Yield ``(key, image, detections)`` for each ``(key, image)`` of ``items``, in order.

    ``image`` is a BGR array; anything else (e.g. the reason an image could
    not be read) passes through with detections None. Items are produced and
    preprocessed in a background thread; consecutive images of one network
    input shape are predicted as one batch.
    """
    def prepared():
        for key, image in items:
            yield (key, image, *(detector.prepare(image) if isinstance(image, np.ndarray) else (None, None)))

    batch = []

    def flush():
        results = detector.detect([entry[2] for entry in batch], [entry[3] for entry in batch])
        done = [(key, image, detections) for (key, image, _, _), detections in zip(batch, results)]
        batch.clear()
        return done

    for key, image, network_input, scale in in_background(prepared(), depth=2 * batch_size):
        if batch and (network_input is None or network_input.shape != batch[0][2].shape):
            yield from flush()
        if network_input is None:
            yield key, image, None
            continue
        batch.append((key, image, network_input, scale))
        if len(batch) == batch_size:
            yield from flush()
    if batch:
        yield from flush()


@dataclass(frozen=True)
class Unreadable:
    """An image file that could not be read, and why."""

    file: str
    reason: str


def read_images(paths):
    """(key, BGR image, or Unreadable) for each (key, path), read as keras-retinanet reads images."""
    for key, path in paths:
        try:
            yield key, read_image_bgr(path)
        except (OSError, ValueError, SyntaxError) as error:  # PIL: missing, truncated or not an image
            log.warning("skipped %s: cannot be read (%s)", path, error)
            yield key, Unreadable(str(path), str(error) or type(error).__name__)


def detect_images(detector, paths, batch_size):
    """Yield ``(key, image, detections)`` for each ``(key, path)``; an image that cannot be read
    comes as an Unreadable with detections None."""
    return detect_stream(detector, read_images(paths), batch_size)

"""Small real keras-retinanet inference models for the prediction, evaluation,
report and pre-labelling tests, built in seconds instead of trained for minutes.

A freshly initialised RetinaNet scores every anchor alike (its activations
vanish through the untrained backbone and the head's tiny initial weights), so
nothing would ever be detected. :func:`make_inference_model` therefore does a
data-dependent initialisation on a few images: every BatchNormalization layer
takes its statistics from them, the classification head gets He-initialised
kernels, and its output is scaled and shifted so that about
``anchors_per_image`` anchors per image score above 0.5 (fewer boxes remain
after non-maximum suppression). The result is an
ordinary RetinaNet, converted with keras-retinanet's ``convert_model`` and
saved as ``.h5``, whose detections differ from image to image and spread over
scores and both classes: what the plumbing needs, not a good detector.
"""
import cv2
import numpy as np

from detflow.lib import retinanet_compat as compat
from detflow.lib.model_card import ModelCard, embed

import tf_keras as keras  # noqa: E402  (after the compat module)
from keras_retinanet import models  # noqa: E402
from keras_retinanet.utils.image import read_image_bgr, resize_image  # noqa: E402

BACKBONE = "mobilenet128_0.25"
FEATURE_SIZE = 16
IMAGE_MIN_SIDE, IMAGE_MAX_SIDE = 96, 128
CALIBRATION_SHAPE = (96, 128)  # height, width of the calibration batch
# The description of the models made here with their defaults, as the convert stage writes it.
CARD = ModelCard(BACKBONE, FEATURE_SIZE, ("grab", "drop"), IMAGE_MIN_SIDE, IMAGE_MAX_SIDE)


def _calibration_batch(backbone, image_paths, image_min_side, image_max_side):
    prepared = [resize_image(backbone.preprocess_image(read_image_bgr(path)), image_min_side, image_max_side)[0]
                for path in image_paths]
    height, width = CALIBRATION_SHAPE
    return np.stack([cv2.resize(image, (width, height)) for image in prepared])


def _logits(model, batch):
    scores = model.predict_on_batch(batch)[1].astype(np.float64)
    return np.log(scores / (1 - scores))


def make_inference_model(path, image_paths, *, backbone=BACKBONE, feature_size=FEATURE_SIZE, classes=("grab", "drop"),
                         image_min_side=IMAGE_MIN_SIDE, image_max_side=IMAGE_MAX_SIDE, anchors_per_image=16,
                         seed=0):
    """Build, initialise on ``image_paths``, convert and save an inference model at ``path`` with its
    description, as the convert stage does; return ``path``."""
    num_classes = len(classes)
    keras.utils.set_random_seed(seed)
    model = compat.build_retinanet(backbone, num_classes, feature_size)
    batch = _calibration_batch(compat.backbone(backbone), image_paths, image_min_side, image_max_side)
    normalisations = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in normalisations:  # momentum 0: one training-mode pass sets the moving statistics to the batch's
        layer.momentum = 0.0
    model(batch, training=True)
    for layer in normalisations:
        layer.momentum = 0.99
    head = model.get_layer("classification_submodel")
    random = np.random.default_rng(seed)
    for layer in head.layers:
        if layer.weights:
            kernel, bias = layer.get_weights()
            fan_in = np.prod(kernel.shape[:3])
            layer.set_weights([random.normal(0, np.sqrt(2 / fan_in), kernel.shape).astype(np.float32), bias])
    output = head.get_layer("pyramid_classification")
    kernel, bias = output.get_weights()
    scale = 1 / _logits(model, batch).std()  # logits of unit spread ...
    output.set_weights([kernel * scale, bias * scale])
    top = np.sort(_logits(model, batch).ravel())[-anchors_per_image * len(batch)]
    kernel, bias = output.get_weights()
    output.set_weights([kernel, bias - top])  # ... shifted so that the top anchors score above 0.5
    models.convert_model(model).save(str(path), save_format="h5", include_optimizer=False)
    embed(path, ModelCard(backbone=backbone, feature_size=feature_size, classes=tuple(classes),
                          image_min_side=image_min_side, image_max_side=image_max_side,
                          training={"training_run": "tests: calibrated, not trained"},
                          detection={"nms": True, "nms_threshold": 0.5, "score_threshold": 0.05,
                                     "max_detections": 300}))
    return path

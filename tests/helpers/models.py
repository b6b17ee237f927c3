"""Small real keras-retinanet models for the tests: inference models built in seconds instead of
trained for minutes (prediction, evaluation, report, pre-labelling and Label Studio tests), the
settings that train a tiny one in seconds, and what its training logs.

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
import tf_keras as keras
from keras_retinanet import models
from keras_retinanet.utils.image import read_image_bgr, resize_image
from tensorboard.backend.event_processing import plugin_event_accumulator
from tensorboard.util import tensor_util

from detflow.lib.inference import detector as inference
from detflow.lib.model import retinanet
from detflow.lib.model.card import ModelCard, embed

BACKBONE = "mobilenet128_0.25"
FEATURE_SIZE = 16
IMAGE_MIN_SIDE, IMAGE_MAX_SIDE = 96, 128
CALIBRATION_SHAPE = (96, 128)  # height, width of the calibration batch
# The description of the models made here with their defaults, as the convert stage writes it.
CARD = ModelCard(BACKBONE, FEATURE_SIZE, ("grab", "drop"), IMAGE_MIN_SIDE, IMAGE_MAX_SIDE)

# Every training setting (config.yaml's train section; the stage has no defaults), for a tiny model.
TINY_SETTINGS = dict(backbone="mobilenet128_0.25", weights="none", feature_size=16, epochs=2, steps=3, batch_size=2,
                     learning_rate=1e-3, lr_schedule="cosine", warmup_steps=3, ema=True, ema_momentum=0.9,
                     box_loss="smooth_l1", head_norm="none", image_min_side=96, image_max_side=128, augment=False,
                     rotate_shear=False, flip_vertical=False, freeze_backbone=False, patience=0, keep_best=1, seed=1, min_free_mb=500)
# The settings that make the model tiny, as a change to config.yaml's train section in the Snakemake runs.
TINY_TRAIN = dict(backbone="mobilenet128_0.25", feature_size=16, steps=3, batch_size=2, learning_rate=1e-3,
                  image_min_side=96, image_max_side=128, keep_best=1, seed=1)
# The training stage's snapshot of an epoch, for the tiny model's backbone.
SNAPSHOT = "mobilenet128_0.25_pascal_{:02d}.h5"


def settings_options(**overrides):
    """The training settings as the train stage's command-line options."""
    options = []
    for name, value in {**TINY_SETTINGS, **overrides}.items():
        options += [f"--{name.replace('_', '-')}", str(value).lower() if isinstance(value, bool) else str(value)]
    return options


def logged_scalars(tensorboard_run):
    """{tag: {step: value}} as tensorboard's event reader sees them (last value per step)."""
    accumulator = plugin_event_accumulator.EventAccumulator(
        str(tensorboard_run), size_guidance={plugin_event_accumulator.TENSORS: 0})
    accumulator.Reload()
    scalars = {}
    for tag in accumulator.Tags()["tensors"]:
        if tag.startswith("epoch_"):
            scalars[tag] = {event.step: float(tensor_util.make_ndarray(event.tensor_proto))
                            for event in accumulator.Tensors(tag)}
    return scalars


def detector(model, score_threshold=0.5):
    """A loaded model made here, as the stages detect with it."""
    return inference.Detector(model, CARD, score_threshold=score_threshold)


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
                         seed=0, head_norm="none"):
    """Build, initialise on ``image_paths``, convert and save an inference model at ``path`` with its
    description, as the convert stage does; return ``path``."""
    num_classes = len(classes)
    keras.utils.set_random_seed(seed)
    model = retinanet.build_retinanet(backbone, num_classes, feature_size, head_norm)
    batch = _calibration_batch(retinanet.backbone(backbone), image_paths, image_min_side, image_max_side)
    normalisations = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in normalisations:  # momentum 0: one training-mode pass sets the moving statistics to the batch's
        layer.momentum = 0.0
    model(batch, training=True)
    for layer in normalisations:
        layer.momentum = 0.99
    head = model.get_layer("classification_submodel")
    random = np.random.default_rng(seed)
    for layer in head.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel, *bias = layer.get_weights()
            fan_in = np.prod(kernel.shape[:3])
            layer.set_weights([random.normal(0, np.sqrt(2 / fan_in), kernel.shape).astype(np.float32), *bias])
    output = head.get_layer("pyramid_classification")
    kernel, bias = output.get_weights()
    scale = 1 / _logits(model, batch).std()  # logits of unit spread ...
    output.set_weights([kernel * scale, bias * scale])
    top = np.sort(_logits(model, batch).ravel())[-anchors_per_image * len(batch)]
    kernel, bias = output.get_weights()
    output.set_weights([kernel, bias - top])  # ... shifted so that the top anchors score above 0.5
    models.convert_model(model).save(str(path), save_format="h5", include_optimizer=False)
    embed(path, ModelCard(backbone=backbone, feature_size=feature_size, classes=tuple(classes),
                          image_min_side=image_min_side, image_max_side=image_max_side, head_norm=head_norm,
                          training={"training_run": "tests: calibrated, not trained"},
                          detection={"nms": True, "nms_threshold": 0.5, "score_threshold": 0.05,
                                     "max_detections": 300}))
    return path

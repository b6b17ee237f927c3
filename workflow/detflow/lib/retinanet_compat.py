"""The one place where keras-retinanet 1.0.0 is adapted to TensorFlow 2.21.

Import this module before TensorFlow, keras_resnet or keras_retinanet in any
process that builds or loads a model (see ../../../shared/STACK.md):

1. ``TF_USE_LEGACY_KERAS=1`` makes ``tensorflow.keras`` the Keras 2 API
   (tf_keras) that keras-retinanet was written for;
2. keras-resnet does ``import keras``, which would be Keras 3 and cannot mix
   with tf_keras layers, so tf_keras is registered as ``keras``.

It also builds a backbone's RetinaNet with a chosen FPN/head width through the
library's own ``submodels`` and ``create_pyramid_features`` arguments, feeds
its generators to tf.keras for any number of steps per epoch, sets up the
device (GPU with memory growth when visible, else CPU), tells where a backbone's
ImageNet weights come from (without downloading them), and records the
precision-recall curves, boxes and detections that keras-retinanet's evaluation computes but does not
return. Nothing here copies or edits library code.
"""
import contextlib
import functools
import logging
import os
import sys
import types
import warnings
from unittest import mock

import numpy as np

log = logging.getLogger(__name__)

LIBRARY_FEATURE_SIZE = 256  # keras-retinanet's FPN and head width

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import tf_keras  # noqa: E402

# keras-retinanet saves and loads .h5 files; tf_keras warns on every save that the format is "legacy".
warnings.filterwarnings("ignore", message="You are saving your model as an HDF5 file")

# Alias the package and its public submodules, so `import keras.layers` finds
# tf_keras's own modules instead of loading second copies of them.
sys.modules["keras"] = tf_keras
for _name, _module in vars(tf_keras).items():
    if isinstance(_module, types.ModuleType) and not _name.startswith("_"):
        sys.modules[f"keras.{_name}"] = _module

import tensorflow as tf  # noqa: E402

# TensorFlow reads TF_USE_LEGACY_KERAS when tf.keras is first used: too late if that already happened.
if tf.keras.Model is not tf_keras.Model:
    raise ImportError("tf.keras was used before detflow.lib.retinanet_compat was imported; import it first")
from keras_retinanet import models  # noqa: E402
from keras_retinanet.models import retinanet as retinanet_module  # noqa: E402
from keras_retinanet.utils import eval as library_eval  # noqa: E402

# The library's FPN builder takes the width as an argument but is module-private.
_library_pyramid_features = getattr(retinanet_module, "__create_pyramid_features")


def backbone(name):
    """keras-retinanet's Backbone object for a name such as ``resnet50`` or ``mobilenet224_1.0``."""
    return models.backbone(name)


def imagenet_weights_source(name):
    """(file name, URL, checksum or None) of the ImageNet weights that backbone ``name`` downloads at training
    start. Its own ``download_imagenet()`` runs with Keras's ``get_file`` replaced by a recorder: the addresses
    and checksums stay the library's, and nothing is fetched."""
    backbone_ = backbone(name)
    library_keras = sys.modules[type(backbone_).__module__].keras  # the module's own `keras` global
    requests = []

    def record(fname, origin, md5_hash=None, file_hash=None, **_):
        requests.append((fname, origin, file_hash or md5_hash))
        return fname

    with mock.patch.object(library_keras.utils, "get_file", record):
        backbone_.download_imagenet()
    if len(requests) != 1:
        raise NotImplementedError(f"{name} asks for {len(requests)} files; one weights file was expected")
    return requests[0]


def retinanet_submodels(num_classes, feature_size, num_anchors=None):
    """The library's regression and classification heads, ``feature_size`` channels wide."""
    if num_anchors is None:
        from keras_retinanet.utils.anchors import AnchorParameters

        num_anchors = AnchorParameters.default.num_anchors()
    return [
        (
            "regression",
            retinanet_module.default_regression_model(
                4, num_anchors, pyramid_feature_size=feature_size, regression_feature_size=feature_size
            ),
        ),
        (
            "classification",
            retinanet_module.default_classification_model(
                num_classes, num_anchors, pyramid_feature_size=feature_size, classification_feature_size=feature_size
            ),
        ),
    ]


def build_retinanet(backbone_name, num_classes, feature_size=LIBRARY_FEATURE_SIZE, modifier=None, submodels=None):
    """A training RetinaNet on ``backbone_name`` whose FPN and heads are ``feature_size`` wide.

    With the library's width (256) this is exactly ``backbone(name).retinanet(num_classes)``.
    ``modifier`` is passed to the backbone (e.g. keras_retinanet.utils.model.freeze); ``submodels``
    replaces the library's heads (as its own ``submodels`` argument; default: the library's).
    """
    return backbone(backbone_name).retinanet(
        num_classes,
        modifier=modifier,
        submodels=submodels or retinanet_submodels(num_classes, feature_size),
        create_pyramid_features=functools.partial(_library_pyramid_features, feature_size=feature_size),
    )


class EpochOfSteps(tf_keras.utils.Sequence):
    """``steps`` batches per epoch from a keras-retinanet generator, going round it as often as needed.

    keras-retinanet's ``--steps`` assumed Keras 2.3's ``fit_generator``, which
    cycled a Sequence for as many steps as asked. tf.keras instead stops the
    whole training ("Your input ran out of data") once an epoch asks for more
    batches than the Sequence holds. The generator reshuffles at every epoch end.
    """

    def __init__(self, generator, steps):
        self.generator = generator
        self.steps = steps

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        return self.generator[index % len(self.generator)]

    def on_epoch_end(self):
        self.generator.on_epoch_end()


def feature_size_of(model):
    """The FPN width of a training or inference RetinaNet (channels of its P3 layer)."""
    return int(model.get_layer("P3").output.shape[-1])


def setup_device(threads=None):
    """Use the first visible GPU with memory growth, else the CPU; return a one-line description.

    Must run before TensorFlow creates its first tensor. ``threads`` caps the CPU
    threads TensorFlow uses (the job's Snakemake threads).
    """
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        # Without it TensorFlow reserves all GPU memory at start-up.
        tf.config.experimental.set_memory_growth(gpu, True)
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        device = f"GPU {gpus[0].name} ({details.get('device_name', 'unknown model')}), memory growth on"
        if len(gpus) > 1:
            device += f"; {len(gpus) - 1} more GPU(s) visible but unused"
    else:
        device = f"CPU ({threads or 'all'} threads); no GPU visible"
    log.info("TensorFlow %s uses %s", tf.__version__, device)
    return device


@contextlib.contextmanager
def recorded_pr_curves():
    """Record the (recall, precision, AP) that keras-retinanet's ``evaluate`` passes to and gets from its
    AP function: one entry per class with boxes, in label order. The library's function does the work."""
    curves = []
    library_compute_ap = library_eval._compute_ap

    def compute_ap(recall, precision):
        average_precision = library_compute_ap(recall, precision)
        curves.append((np.asarray(recall, dtype=float), np.asarray(precision, dtype=float), float(average_precision)))
        return average_precision

    library_eval._compute_ap = compute_ap
    try:
        yield curves
    finally:
        library_eval._compute_ap = library_compute_ap


@contextlib.contextmanager
def recorded_boxes():
    """Record the ground-truth boxes and detections that keras-retinanet's ``evaluate`` collects but does not
    return: ``{"annotations": [image][label] (n, 4), "detections": [image][label] (n, 5)}``, in image pixels."""
    recorded = {}
    library_functions = {name: getattr(library_eval, f"_get_{name}") for name in ("annotations", "detections")}

    def recording(name):
        def collect(*args, **kwargs):
            result = library_functions[name](*args, **kwargs)
            # _get_detections returns (detections, inference seconds per image).
            recorded[name] = result[0] if name == "detections" else result
            return result
        return collect

    for name in library_functions:
        setattr(library_eval, f"_get_{name}", recording(name))
    try:
        yield recorded
    finally:
        for name, function in library_functions.items():
            setattr(library_eval, f"_get_{name}", function)

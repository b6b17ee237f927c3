"""keras-retinanet 1.0.0 on TensorFlow 2.21: its RetinaNet built with a chosen FPN and head width and this
project's heads, loaded with this project's layers and losses, and where its ImageNet weights come from.

keras-retinanet is written for Keras 2. ``detflow/__init__.py`` makes ``tensorflow.keras`` the Keras 2 API
(tf_keras); keras-resnet, which keras-retinanet's ResNet backbones import, does ``import keras``, which
would be Keras 3 and cannot mix with tf_keras layers, so :func:`use_tf_keras_as_keras` registers tf_keras
as ``keras`` before any backbone is touched. The width goes through the library's own ``submodels`` and
``create_pyramid_features`` arguments. Nothing here copies or edits library code.
"""
import functools
import sys
import types
import warnings
from unittest import mock

import tensorflow as tf
import tf_keras
from keras_retinanet import models
from keras_retinanet.models import retinanet as retinanet_module
from keras_retinanet.utils.anchors import AnchorParameters

from detflow.lib.model import heads
from detflow.lib.model.losses import custom_losses

LIBRARY_FEATURE_SIZE = 256  # keras-retinanet's FPN and head width

# The library's FPN builder takes the width as an argument but is module-private.
_library_pyramid_features = getattr(retinanet_module, "__create_pyramid_features")


def use_tf_keras_as_keras():
    """Make ``import keras`` give tf_keras (for keras-resnet), once, before a backbone is built or loaded."""
    # keras-retinanet saves and loads .h5 files; tf_keras warns on every save that the format is "legacy".
    warnings.filterwarnings("ignore", message="You are saving your model as an HDF5 file")
    if sys.modules.get("keras") is tf_keras:
        return
    # TensorFlow reads TF_USE_LEGACY_KERAS when tf.keras is first used: too late if that happened before detflow.
    if tf.keras.Model is not tf_keras.Model:
        raise ImportError("tf.keras was used before detflow was imported, so it is Keras 3; import detflow first")
    # Alias the package and its public submodules, so `import keras.layers` finds tf_keras's own modules.
    sys.modules["keras"] = tf_keras
    for name, module in vars(tf_keras).items():
        if isinstance(module, types.ModuleType) and not name.startswith("_"):
            sys.modules[f"keras.{name}"] = module


def backbone(name):
    """keras-retinanet's Backbone object for a name such as ``resnet50`` or ``mobilenet224_1.0``."""
    use_tf_keras_as_keras()
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


def library_submodels(num_classes, feature_size, num_anchors=None):
    """The library's regression and classification heads, ``feature_size`` channels wide."""
    if num_anchors is None:
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


def build_retinanet(backbone_name, num_classes, feature_size=LIBRARY_FEATURE_SIZE, head_norm="none", modifier=None):
    """A training RetinaNet on ``backbone_name`` whose FPN and heads are ``feature_size`` wide.

    With the library's width (256) and heads (``head_norm`` none) this is exactly
    ``backbone(name).retinanet(num_classes)``. ``head_norm`` group: group-normalised heads
    (:mod:`detflow.lib.model.heads`). ``modifier`` is passed to the backbone (e.g.
    keras_retinanet.utils.model.freeze).
    """
    normalized = heads.submodels_for(head_norm, num_classes, feature_size)  # built before the backbone, as seeded
    return backbone(backbone_name).retinanet(
        num_classes,
        modifier=modifier,
        submodels=normalized or library_submodels(num_classes, feature_size),
        create_pyramid_features=functools.partial(_library_pyramid_features, feature_size=feature_size),
    )


def load_model(path, backbone_name):
    """keras-retinanet's ``models.load_model``, which also knows this project's heads and box losses."""
    use_tf_keras_as_keras()
    with tf_keras.utils.custom_object_scope(custom_losses()):
        return models.load_model(str(path), backbone_name=backbone_name)


def feature_size_of(model):
    """The FPN width of a training or inference RetinaNet (channels of its P3 layer)."""
    return int(model.get_layer("P3").output.shape[-1])

"""keras-retinanet 1.0.0 on TensorFlow 2.21 through detflow.lib.model.retinanet:
Keras 2 everywhere, keras-resnet importable, FPN/head width configurable."""
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from detflow.lib.model import retinanet


def weight_shapes(model):
    return sorted((weight.name, tuple(weight.shape)) for weight in model.weights)


def test_importing_the_package_only_makes_tf_keras_tensorflows_keras():
    """Importing any module of the package sets what must precede TensorFlow and nothing else: ``keras`` is
    left alone until a backbone is built or loaded."""
    code = ("import os, sys, tf_keras, tensorflow as tf\n"
            "import detflow.lib.model.retinanet, detflow.lib.inference.detector, detflow.lib.training.callbacks\n"
            "print(os.environ['TF_USE_LEGACY_KERAS'], tf.keras.Model is tf_keras.Model,"
            " sys.modules.get('keras') is tf_keras)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["1", "True", "False"]


def test_keras_is_keras_2_for_tensorflow_and_keras_resnet():
    # keras-resnet's layers are tf_keras layers, so a ResNet RetinaNet builds.
    model = retinanet.build_retinanet("resnet50", num_classes=2)
    import keras.layers
    import keras_resnet.models

    assert sys.modules["keras"] is tf_keras
    assert keras.layers is tf_keras.layers
    assert tf.keras.Model is tf_keras.Model
    assert any(isinstance(layer, keras_resnet.layers.BatchNormalization) for layer in model.layers)
    assert model.output_names == ["regression", "classification"]


def test_library_width_builds_the_library_model():
    ours = retinanet.build_retinanet("mobilenet128_0.25", num_classes=2)
    library = retinanet.backbone("mobilenet128_0.25").retinanet(2)
    assert retinanet.feature_size_of(ours) == retinanet.LIBRARY_FEATURE_SIZE == retinanet.feature_size_of(library)
    # Same layers (but the auto-numbered input) with the same weights.
    assert [layer.name for layer in ours.layers[1:]] == [layer.name for layer in library.layers[1:]]
    assert weight_shapes(ours) == weight_shapes(library)
    assert ours.count_params() == library.count_params()


@pytest.mark.parametrize("feature_size", [16, 64])
def test_narrow_fpn_and_heads_save_load_and_convert(tmp_path, feature_size):
    from keras_retinanet import models

    model = retinanet.build_retinanet("mobilenet128_0.25", num_classes=2, feature_size=feature_size)
    assert retinanet.feature_size_of(model) == feature_size
    classification_head = model.get_layer("classification_submodel")
    assert classification_head.get_layer("pyramid_classification_3").filters == feature_size
    assert model.get_layer("regression_submodel").get_layer("pyramid_regression_0").filters == feature_size
    assert model.count_params() < retinanet.build_retinanet("mobilenet128_0.25", 2).count_params()

    path = tmp_path / "snapshot.h5"
    model.save(path)
    loaded = retinanet.load_model(path, "mobilenet128_0.25")
    assert weight_shapes(loaded) == weight_shapes(model)
    inference = models.convert_model(loaded)
    assert retinanet.feature_size_of(inference) == feature_size
    boxes, scores, labels = inference.predict_on_batch(np.zeros((1, 96, 128, 3), dtype="float32"))
    assert boxes.shape == (1, 300, 4) and scores.shape == (1, 300) and labels.shape == (1, 300)


def test_device_setup_names_the_device():
    # A fresh process: devices and threads can only be set before TensorFlow starts its runtime.
    code = (
        "import logging; logging.basicConfig(level=logging.INFO)\n"
        "from detflow.lib.model.device import setup_device; print(setup_device(threads=2))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    device = result.stdout.strip()
    if tf.config.list_physical_devices("GPU"):
        assert device.startswith("GPU") and "memory growth on" in device
    else:
        assert device == "CPU (2 threads); no GPU visible"
    assert f"uses {device}" in result.stderr

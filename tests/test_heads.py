"""Group-normalised heads (detflow.lib.model.heads): why they exist (the
library's heads, trained from scratch, start by passing on a thousandth of
their input's scale), and that a model built with them trains, resumes,
converts and detects in a fresh process like the library's."""
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from test_train import metrics_rows, run_training

from detflow.lib.cli import InputError
from detflow.lib.model import heads as normalized_heads
from detflow.lib.model import retinanet
from helpers.config import CONFIG
from helpers.models import BACKBONE, FEATURE_SIZE


def head_scale(head_norm):
    """Standard deviation of the regression head's last hidden layer over that of P3, in training mode
    (batch statistics), at initialisation, on random images."""
    tf.keras.utils.set_random_seed(1)
    model = retinanet.build_retinanet(BACKBONE, 2, FEATURE_SIZE, head_norm)
    images = np.random.RandomState(0).uniform(-100, 100, (2, 96, 128, 3)).astype("float32")
    pyramid = tf.keras.Model(model.input, model.get_layer("P3").output)(images, training=True)
    head = model.get_layer("regression_submodel")
    last = f"pyramid_regression_{normalized_heads.DEPTH - 1}"  # the library's convolution includes its ReLU
    last_hidden = tf.keras.Model(head.input, head.get_layer(last if head_norm == "none" else f"{last}_relu").output)
    return float(np.std(last_hidden(pyramid, training=True))) / float(np.std(pyramid))


def test_normalised_heads_keep_the_scale_the_library_heads_lose():
    assert head_scale("none") < 0.01
    assert head_scale("group") > 0.2


def test_outputs_and_names_are_the_library_heads():
    library = retinanet.build_retinanet(BACKBONE, 2, FEATURE_SIZE)
    normalised = retinanet.build_retinanet(BACKBONE, 2, FEATURE_SIZE, "group")
    assert normalised.output_names == library.output_names == ["regression", "classification"]
    assert [tuple(output.shape) for output in normalised.outputs] == \
        [tuple(output.shape) for output in library.outputs]


def test_training_with_normalised_heads_resumes_converts_and_detects(voc, tmp_path):
    """Train, resume, choose, convert as the workflow does; the model describes its heads, and a fresh process
    loads it through the checked loader predict, evaluate and export use, and runs it."""
    from detflow import best_snapshot, convert

    work = tmp_path / "work"
    run_training(voc, work, epochs=1, head_norm="group")
    summary = run_training(voc, work, epochs=2, head_norm="group")
    assert summary["resumed_from"]["epoch"] == 1
    best_snapshot.select_best_snapshot({"default": work / "training.json"}, "loss", tmp_path / "best.json",
                                       tmp_path / "best.h5")
    convert.convert(tmp_path / "best.h5", tmp_path / "best.json", tmp_path / "inference.h5", **CONFIG["convert"])
    code = ("import sys; from detflow.lib.model.card import read_card; "
            "from detflow.lib.inference.detector import load_inference_model; import numpy as np; "
            "card = read_card(sys.argv[1]); model = load_inference_model(sys.argv[1], card); "
            "boxes, scores, labels = model.predict(np.zeros((1, 96, 128, 3), 'float32'), verbose=0); "
            "print(card.head_norm, boxes.shape[-1])")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "inference.h5")], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-2:] == ["group", "4"]


def test_the_same_seed_trains_the_same_model_with_normalised_heads_and_giou(voc, tmp_path):
    """config.yaml's recipe (group-normalised heads, GIoU) keeps the training stage reproducible."""
    losses = []
    for run in ("first", "again"):
        run_training(voc, tmp_path / run, epochs=2, head_norm="group", box_loss="giou")
        losses.append([(row["loss"], row["regression_loss"]) for row in metrics_rows(tmp_path / run)])
    assert losses[0] == losses[1]


def test_a_model_whose_heads_differ_from_its_description_is_refused(voc, tmp_path):
    from keras_retinanet import models

    from detflow.lib.inference.detector import load_inference_model
    from detflow.lib.model.card import ModelCard

    model = models.convert_model(retinanet.build_retinanet(BACKBONE, 2, FEATURE_SIZE))
    model.save(tmp_path / "inference.h5")
    card = ModelCard(BACKBONE, FEATURE_SIZE, ("grab", "drop"), 96, 128, head_norm="group")
    with pytest.raises(InputError, match="as its description says"):
        load_inference_model(tmp_path / "inference.h5", card)


@pytest.mark.parametrize("feature_size,groups", [(16, 2), (64, 8), (256, 32)])
def test_groups_of_eight_channels(feature_size, groups):
    model = normalized_heads.submodels(2, 9, feature_size)[0][1]
    assert model.get_layer("pyramid_regression_0_norm").groups == groups


def test_group_norm_equals_keras_group_normalization():
    """The plain-operations layer (which TFLite can run at any image size) computes what Keras's does."""
    inputs = np.random.RandomState(2).normal(3, 2, (2, 5, 7, 16)).astype("float32")
    ours, theirs = normalized_heads.GroupNorm(4), tf.keras.layers.GroupNormalization(4, epsilon=1e-3)
    ours.build(inputs.shape), theirs.build(inputs.shape)
    scale, offset = np.linspace(0.5, 2, 16).astype("float32"), np.linspace(-1, 1, 16).astype("float32")
    ours.set_weights([scale, offset]), theirs.set_weights([scale, offset])
    np.testing.assert_allclose(ours(inputs), theirs(inputs), atol=1e-5)

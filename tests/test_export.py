"""Exported models: the export stage writes SavedModel, ONNX and TFLite beside the model's
description; each, loaded by its own runtime (TensorFlow, onnxruntime, TFLite interpreter), finds
the Keras model's detections as detflow.lib.metrics.detection_match defines them; predict runs them with
--runtime; bad input (description missing or foreign, runtime not installed, unknown runtime or
format) is refused in one line."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from detflow import export, predict
from detflow.lib.cli import InputError
from detflow.lib.inference import detector as inference
from detflow.lib.inference.detector import Detection
from detflow.lib.metrics.detection_match import SCORE_TOLERANCE, compare, compare_image
from detflow.lib.model import runtimes
from detflow.lib.model.card import read_card
from detflow.lib.model.detection_filter import filter_detections
from helpers.config import CONFIG, config_options
from helpers.models import CARD

LOW_THRESHOLD = 0.05  # the model's own floor: hundreds of boxes per image, the hardest comparison


@pytest.fixture(scope="module")
def exported(model_path, tmp_path_factory):
    """The tiny model exported to all three formats by the stage's command line."""
    out = tmp_path_factory.mktemp("export")
    export.main([str(model_path), str(out), "--formats", "savedmodel,onnx,tflite"])
    return out


@pytest.fixture(scope="module")
def images(voc):
    return [(path.stem, path) for path in sorted((voc / "JPEGImages").glob("*.jpg"))]


@pytest.fixture(scope="module")
def keras_detections(model, images):
    """The Keras model's detections of a few images of several sizes, one at a time."""
    return detections(inference.Detector(model, CARD, score_threshold=LOW_THRESHOLD), images[::3], 1)


def detections(detector, images, batch_size):
    return [found for _, _, found in inference.detect_images(detector, images, batch_size)]


def test_export_writes_every_format_beside_the_models_description(exported, model_path):
    assert (exported / "saved_model" / "saved_model.pb").is_file()
    assert (exported / "model.onnx").stat().st_size > 0 and (exported / "model.tflite").stat().st_size > 0
    assert json.loads((exported / "model.json").read_text()) == read_card(model_path).as_dict()
    assert not [path.name for path in exported.iterdir() if "partial" in path.name or path.name.startswith(".")]


@pytest.mark.parametrize("runtime", ["tf", "onnx", "tflite"])
def test_each_runtime_finds_the_keras_models_detections(exported, keras_detections, images, runtime):
    reference = keras_detections
    loaded = runtimes.load_exported(exported, runtime, threads=2)
    assert loaded.runtime == runtime and loaded.path.name == runtimes.FILES[runtime]
    for batch_size in (1, 4):
        found = detections(inference.Detector(loaded, CARD, score_threshold=LOW_THRESHOLD), images[::3], batch_size)
        differences = compare(reference, found, LOW_THRESHOLD)
        assert differences.within_tolerance, str(differences)
        assert differences.matched == sum(map(len, reference)) > 10 * len(reference)


def test_group_normalised_heads_export_with_the_same_detections(voc, images, tmp_path):
    """config.yaml's heads (head_norm: group) go through ONNX opset 17 (no GroupNormalization operator:
    tf2onnx writes it out) and TFLite with the Keras model's detections."""
    from helpers.models import make_inference_model

    path = make_inference_model(tmp_path / "inference.h5", sorted((voc / "JPEGImages").glob("train_*.jpg")),
                                head_norm="group")
    card = read_card(path)
    assert card.head_norm == "group"
    export.main([str(path), str(tmp_path / "export"), "--formats", "onnx,tflite"])
    detector = inference.Detector(inference.load_inference_model(path, card), card, score_threshold=LOW_THRESHOLD)
    reference = detections(detector, images[::3], 1)
    for runtime in ("onnx", "tflite"):
        loaded = runtimes.load_exported(tmp_path / "export", runtime, threads=2)
        found = detections(inference.Detector(loaded, card, score_threshold=LOW_THRESHOLD), images[::3], 4)
        differences = compare(reference, found, LOW_THRESHOLD)
        assert differences.within_tolerance, f"{runtime}: {differences}"
        assert differences.matched == sum(map(len, reference)) > 10 * len(reference)


def test_the_filter_keeps_what_filter_detections_keeps(model, images):
    """Our NMS after the raw outputs, against keras-retinanet's FilterDetections layer in the same graph."""
    detector = inference.Detector(model, CARD, score_threshold=0.0)
    network_input, _ = detector.prepare(inference.read_image_bgr(images[0][1]))
    batch = network_input[None]
    boxes, scores, labels = (output.numpy()[0] for output in model(batch)[:3])
    raw_boxes, raw_scores = (model.get_layer(name).output for name in ("clipped_boxes", "classification"))
    import tf_keras

    raw = tf_keras.Model(model.inputs, [raw_boxes, raw_scores])(batch)
    kept = scores > -1  # FilterDetections pads with -1
    ours = filter_detections(raw[0].numpy()[0], raw[1].numpy()[0], CARD.detection)
    assert len(ours[1]) == kept.sum() > 50
    np.testing.assert_allclose(ours[1], scores[kept], atol=1e-6)
    np.testing.assert_array_equal(ours[2], labels[kept])
    np.testing.assert_allclose(ours[0], boxes[kept], atol=1e-4)


def test_predict_runs_the_onnx_model(exported, model, voc, images, tmp_path):
    predict.main(["images", str(exported), str(voc), "val", "--out-dir", str(tmp_path / "images"), "--csv",
                  str(tmp_path / "d.csv"), "--json", str(tmp_path / "d.json"), "--runtime", "onnx",
                  "--classes", str(voc / "classes.json"), "--threads", "2", "--score-threshold", "0.5",
                  *config_options("predict", "batch_size")])
    content = json.loads((tmp_path / "d.json").read_text())
    val = [(key, path) for key, path in images if key in {image["image"] for image in content["images"]}]
    reference = detections(inference.Detector(model, CARD, score_threshold=0.5), val, 8)
    differences = compare(reference, [image["detections"] for image in content["images"]], 0.5)
    assert differences.within_tolerance and differences.matched > 0, str(differences)
    assert len(list((tmp_path / "images").glob("*.jpg"))) == len(val) > 0


def test_a_missing_description_is_one_line_from_the_command_line(exported, voc, tmp_path):
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(exported / "model.onnx", alone)
    result = subprocess.run(
        [sys.executable, "-m", "detflow.predict", "images", str(alone / "model.onnx"), str(voc), "val", "--out-dir",
         str(tmp_path / "o"), "--csv", str(tmp_path / "d.csv"), "--json", str(tmp_path / "d.json"),
         "--runtime", "onnx", *config_options("predict", "score_threshold", "batch_size")], capture_output=True,
        text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {alone / 'model.onnx'}: has no description beside it (model.json is missing: the export stage "
        "writes it with the model; export again with python -m detflow.export)")
    assert not (tmp_path / "d.csv").exists()


def test_a_description_that_does_not_belong_to_the_model_is_refused(exported, tmp_path):
    shutil.copy(exported / "model.tflite", tmp_path)
    card = json.loads((exported / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps({**card, "classes": ["grab", "drop", "point"]}))
    with pytest.raises(InputError, match="predicts 2 classes, but its description .model.json. names 3 "
                                         r"\(grab, drop, point\): the description does not belong to this model"):
        runtimes.load_exported(tmp_path, "tflite")


def test_a_runtime_that_is_not_installed_is_named(exported, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what Python sees when it is not installed
    with pytest.raises(InputError, match="the onnx runtime needs onnxruntime, which is not installed"):
        runtimes.load_exported(exported, "onnx")


def test_a_converter_that_is_not_installed_is_named_before_any_work(model_path, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    with pytest.raises(InputError, match="format onnx: needs tf2onnx, which is not installed"):
        export.export(model_path, tmp_path / "out", ["onnx"], opset=CONFIG["export"]["opset"])
    assert not (tmp_path / "out").exists()


def test_unknown_runtime_and_format_are_refused(exported, model_path, tmp_path, capsys):
    with pytest.raises(InputError, match="unknown runtime 'torch': one of keras, tf, onnx, tflite"):
        runtimes.load_exported(exported, "torch")
    with pytest.raises(InputError, match="formats are savedmodel, onnx, tflite"):
        export.export(model_path, tmp_path, ["pt"], opset=CONFIG["export"]["opset"])
    with pytest.raises(SystemExit):
        predict.main(["images", str(exported), "voc", "val", "--out-dir", "o", "--csv", "c", "--json", "j",
                      "--runtime", "torch", *config_options("predict", "score_threshold", "batch_size")])
    assert "invalid choice: 'torch'" in capsys.readouterr().err


def test_a_runtime_without_its_file_says_what_writes_it(tmp_path):
    with pytest.raises(InputError, match="not found: the tflite runtime runs model.tflite as the export stage"):
        runtimes.load_exported(tmp_path / "model.tflite", "tflite")


def _detection(name, score, box):
    return Detection(0, name, score, box)


def test_same_detections_allows_rounding_and_the_threshold_edge_only():
    reference = [_detection("grab", 0.9, (10, 10, 50, 50)), _detection("drop", 0.505, (60, 10, 90, 40))]
    close = [_detection("grab", 0.895, (10.5, 10, 50, 49.6))]  # the 0.505 box fell below 0.5 on this side
    differences = compare_image(reference, close, 0.5)
    assert differences.within_tolerance and (differences.matched, differences.near_threshold) == (1, 1)
    assert differences.max_coordinate == pytest.approx(0.5) and differences.max_score == pytest.approx(0.005)
    moved = compare_image(reference[:1], [_detection("grab", 0.9, (12, 10, 52, 50))], 0.5)
    assert not moved.within_tolerance and moved.max_coordinate == pytest.approx(2)
    other_class = compare_image(reference[:1], [_detection("drop", 0.9, (10, 10, 50, 50))], 0.5)
    assert (other_class.matched, other_class.unmatched) == (0, 2)
    rescored = compare_image(reference[:1], [_detection("grab", 0.9 - 2 * SCORE_TOLERANCE, (10, 10, 50, 50))], 0.5)
    assert not rescored.within_tolerance and "score 0.02" in str(rescored)


def test_the_export_target_writes_the_configured_formats(workflow_copy):
    workflow_copy.set_config(export={"formats": ["onnx", "tflite"]})
    plan = workflow_copy.snakemake("-n", "-p", "export").stdout
    job = plan[plan.index("rule export:"):].split("\n\n")[0]
    outputs = next(line for line in job.splitlines() if line.strip().startswith("output:"))
    assert sorted(outputs.split(":", 1)[1].replace(",", " ").split()) == [
        "results/export/model.json", "results/export/model.onnx", "results/export/model.tflite"]
    assert "python -m detflow.export results/model/inference.h5 results/export --formats onnx,tflite --opset 17" in job

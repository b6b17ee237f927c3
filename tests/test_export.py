"""Exported models: the export stage writes SavedModel, ONNX and TFLite that stand alone (a BGR image
of any size in, the model's final detections out, the model's description inside each file) beside
model.json; each, loaded by its own runtime (TensorFlow, onnxruntime, TFLite interpreter), finds the
Keras model's detections as detflow.lib.metrics.detection_match defines them; predict runs them with
--runtime; the README's plain onnxruntime script finds predict's detections; bad input (a model.json
of another model, files of two models in one folder, a damaged file, a file in another runtime's
format, a file without its description, runtime not installed, unknown runtime or format) is refused
in one line."""
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import onnxruntime
import pytest

from detflow import export, predict
from detflow.lib.cli import InputError
from detflow.lib.inference import detector as inference
from detflow.lib.inference.detector import Detection
from detflow.lib.metrics.detection_match import SCORE_TOLERANCE, compare, compare_image
from detflow.lib.model import export_description, runtimes, standalone_graph
from detflow.lib.model.card import read_card
from helpers.config import CONFIG, config_options
from helpers.models import CARD
from helpers.workflow import REPO

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


def test_export_writes_every_format_describing_itself_beside_model_json(exported, model_path):
    assert (exported / "saved_model" / "saved_model.pb").is_file()
    assert (exported / "model.onnx").stat().st_size > 0 and (exported / "model.tflite").stat().st_size > 0
    description = {**read_card(model_path).as_dict(), "fingerprint": export_description.fingerprint(model_path)}
    assert json.loads((exported / "model.json").read_text()) == description
    import tensorflow as tf

    own = [export_description.from_onnx(onnxruntime.InferenceSession(str(exported / "model.onnx"))),
           export_description.from_tflite((exported / "model.tflite").read_bytes()),
           export_description.from_saved_model(tf.saved_model.load(str(exported / "saved_model")))]
    assert [json.loads(text) for text in own] == [description] * 3
    assert not [path.name for path in exported.iterdir() if "partial" in path.name or path.name.startswith(".")]


def test_the_tflite_model_has_only_builtin_operators(exported):
    """Non-maximum suppression included, and no TensorFlow "select" (Flex) operator: the bare interpreter runs it."""
    builtins = export.tflite_operators((exported / "model.tflite").read_bytes())
    assert {"NON_MAX_SUPPRESSION_V4", "TOPK_V2", "GATHER"} <= builtins and "CUSTOM" not in builtins


@pytest.mark.parametrize("runtime", ["tf", "onnx", "tflite"])
def test_each_runtime_finds_the_keras_models_detections(exported, keras_detections, images, runtime):
    reference = keras_detections
    loaded = runtimes.load_exported(exported, runtime, threads=2)
    assert loaded.runtime == runtime and loaded.path.name == runtimes.FILES[runtime]
    for batch_size in (1, 4):
        found = detections(inference.Detector(loaded, loaded.card, score_threshold=LOW_THRESHOLD), images[::3],
                           batch_size)
        differences = compare(reference, found, LOW_THRESHOLD)
        assert differences.within_tolerance, str(differences)
        assert differences.matched >= sum(map(len, reference)) - differences.near_threshold > 10 * len(reference)


def test_the_int8_onnx_model_is_calibrated_on_training_images_and_finds_the_same_objects(
        model_path, voc, keras_detections, images, tmp_path):
    """Its convolutions in int8 (onnxruntime's static quantisation, calibrated on the train split): the same
    description as the float model, and, on this untrained model's many weak boxes, the same strong ones."""
    written = export.export(model_path, tmp_path, ["onnx_int8"], opset=17, calibration_voc=voc)
    assert set(written) == {"onnx_int8"} and not (tmp_path / "model.onnx").exists()
    quantized = runtimes.load_exported(written["onnx_int8"], "onnx", threads=2)
    import onnx

    operators = {node.op_type for node in onnx.load(str(written["onnx_int8"])).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= operators
    meta = {item.key: item.value for item in onnx.load(str(written["onnx_int8"])).metadata_props}
    assert meta["quantization"].startswith("int8 convolutions, calibrated on ") and "detflow_model" in meta
    strong = 0.5
    found = detections(inference.Detector(quantized, quantized.card, score_threshold=strong), images[::3], 1)
    reference = [[item for item in image if item.score >= strong] for image in keras_detections]
    assert sum(map(len, found)) == pytest.approx(sum(map(len, reference)), rel=0.2)
    with pytest.raises(InputError, match="needs --calibration-voc"):
        export.export(model_path, tmp_path / "again", ["onnx_int8"], opset=17)
    with pytest.raises(InputError, match="^--formats onnx_int8,tflite_int8: needs --calibration-voc"):
        export.export(model_path, tmp_path / "again", ["onnx_int8", "tflite", "tflite_int8"], opset=17)


def test_the_int8_tflite_model_is_calibrated_and_finds_the_keras_models_objects(
        model_path, voc, keras_detections, images, tmp_path):
    """Its convolutions in int8, calibrated on the train split, all else float: the file's own description,
    run by the TFLite runtime beside the float file. Accuracy is bench/runtimes.py's to measure, on the trained
    demo model: this untrained model's scores crowd around 0.5, where int8 rounding reorders them, so only
    most of its strong boxes are asked for."""
    written = export.export(model_path, tmp_path, ["tflite", "tflite_int8"], opset=17, calibration_voc=voc)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.int8.tflite", "model.json", "model.tflite"]
    assert "int8" in runtimes._quantised_types(written["tflite_int8"]) and not runtimes._quantised_types(
        written["tflite"])
    # ... and reshapes, which move int8 values unchanged
    assert _operators_taking_int8(written["tflite_int8"]) <= {"CONV_2D", "DEPTHWISE_CONV_2D", "DEQUANTIZE", "RESHAPE"}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D"} <= _operators_taking_int8(written["tflite_int8"])
    assert written["tflite_int8"].stat().st_size < written["tflite"].stat().st_size / 2
    quantised = runtimes.load_exported(written["tflite_int8"], "tflite", threads=2)
    assert quantised.card == read_card(model_path) and quantised.path == written["tflite_int8"]
    assert runtimes.load_exported(tmp_path, "tflite").path == written["tflite"]  # a folder: the float file
    strong = 0.5
    found = detections(inference.Detector(quantised, quantised.card, score_threshold=strong), images[::3], 1)
    reference = [[item for item in image if item.score >= strong] for image in keras_detections]
    differences = compare(reference, found, strong)
    assert differences.matched >= 0.5 * sum(map(len, reference)) > 0, str(differences)


def _operators_taking_int8(path):
    """The names of the operators of a TFLite file whose first input is an int8 tensor."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(path.read_bytes(), 0)
    graph, names = model.Subgraphs(0), export.tflite_operator_names(model)
    return {names[operator.OpcodeIndex()] for operator in map(graph.Operators, range(graph.OperatorsLength()))
            if operator.InputsLength() and graph.Tensors(operator.Inputs(0)).Type() == schema.TensorType.INT8}


@pytest.mark.parametrize("runtime", ["onnx", "tflite"])
def test_live_detects_frame_by_frame_as_the_keras_model(exported, keras_detections, images, runtime):
    """live's own calls on each frame (Detector.prepare, then detect of that one frame) on an export."""
    loaded = runtimes.load_exported(exported, runtime, threads=2)
    detector = inference.Detector(loaded, loaded.card, score_threshold=LOW_THRESHOLD)
    found = [detector.detect(*([value] for value in detector.prepare(inference.read_image_bgr(path))))[0]
             for _, path in images[::3]]
    differences = compare(keras_detections, found, LOW_THRESHOLD)
    assert differences.within_tolerance and differences.matched > 10 * len(found), str(differences)


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
        found = detections(inference.Detector(loaded, loaded.card, score_threshold=LOW_THRESHOLD), images[::3], 4)
        differences = compare(reference, found, LOW_THRESHOLD)
        assert differences.within_tolerance, f"{runtime}: {differences}"
        assert differences.matched >= sum(map(len, reference)) - differences.near_threshold > 10 * len(reference)


def test_an_image_with_nothing_detected_gives_no_detections_on_every_runtime(model, model_path, voc, tmp_path):
    """A frame with no object above the model's floor (a scene without hands) is no error: TFLite's
    signature runner cannot read an output of no elements, which its runtime answers for it."""
    from detflow.lib.model.card import embed

    head = model.get_layer("classification_submodel").get_layer("pyramid_classification")
    kernel, bias = head.get_weights()
    head.set_weights([kernel, bias - 50])  # every score below the floor
    try:
        silent = tmp_path / "inference.h5"
        model.save(str(silent), save_format="h5", include_optimizer=False)
    finally:
        head.set_weights([kernel, bias])
    embed(silent, read_card(model_path))
    export.main([str(silent), str(tmp_path / "export"), "--formats", "savedmodel,onnx,tflite"])
    image = inference.read_image_bgr(voc / "JPEGImages" / "val_000.jpg")
    for runtime in ("tf", "onnx", "tflite"):
        boxes, scores, labels = runtimes.load_exported(tmp_path / "export", runtime, threads=2).detect(image)
        assert (boxes.shape, scores.shape, labels.shape) == ((0, 4), (0,), (0,)), runtime
        assert (boxes.dtype, scores.dtype, labels.dtype) == (np.float32, np.float32, np.int32), runtime


@pytest.mark.parametrize("height, width, min_side, max_side", [
    (183, 169, 96, 128), (240, 320, 160, 224), (721, 1283, 160, 224), (37, 500, 96, 128), (50, 60, 160, 224)])
def test_the_graph_resizes_as_keras_retinanet_and_opencv(height, width, min_side, max_side):
    """Scale capped by the longer side, the size rounded as cv2.resize rounds it, OpenCV's bilinear samples."""
    import tensorflow as tf
    from keras_retinanet.utils.image import resize_image

    image = np.random.default_rng(height).uniform(-1, 1, (height, width, 3)).astype(np.float32)
    expected, expected_scale = resize_image(image, min_side, max_side)
    scale = standalone_graph.resize_scale(float(height), float(width), float(min_side), float(max_side))
    resized = standalone_graph.resize_like_opencv(tf.constant(image[None]), scale, height, width).numpy()[0]
    assert float(scale) == pytest.approx(expected_scale, rel=1e-6) and resized.shape == expected.shape
    np.testing.assert_allclose(resized, expected, atol=1e-3)


@pytest.mark.parametrize("backbone", ["resnet50", "mobilenet224_1.0", "vgg16", "densenet121"])
def test_the_graph_preprocesses_with_the_backbones_own_map(backbone):
    from detflow.lib.model import retinanet

    scale, offset = standalone_graph.affine_preprocessing(backbone)
    image = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    np.testing.assert_allclose(image * scale + offset, retinanet.backbone(backbone).preprocess_image(image), atol=1e-4)


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


# The README's section whose ```python block is the plain onnxruntime script, run here exactly as it stands.
README_SECTION = "## The model without detflow"


def readme_script():
    text = (REPO / "README.md").read_text()
    return re.search(r"```python\n(.*?)```", text[text.index(README_SECTION):], re.S).group(1)


def test_the_readmes_onnxruntime_script_finds_predicts_detections(exported, model_path, voc, tmp_path):
    script, threshold = readme_script(), CONFIG["predict"]["score_threshold"]
    imports = re.findall(r"^(?:import|from) (\S+)", script, re.M)
    assert len(script.splitlines()) <= 15 and sorted(imports) == ["cv2", "json", "onnxruntime"]
    assert f"score >= {threshold:g}" in script and "detflow" not in script.replace('"detflow_model"', "")
    predict.main(["images", str(model_path), str(voc), "val", "--out-dir", str(tmp_path / "predicted"), "--csv",
                  str(tmp_path / "d.csv"), "--json", str(tmp_path / "d.json"),
                  *config_options("predict", "score_threshold", "batch_size")])  # the Keras model, its own threads
    content = json.loads((tmp_path / "d.json").read_text())
    predicted = {image["image"]: image["detections"] for image in content["images"]}
    plain = tmp_path / "plain"
    (plain / "results" / "export").mkdir(parents=True)
    shutil.copy(exported / "model.onnx", plain / "results" / "export")
    printed = []
    for image_id in predicted:  # the script reads frame.jpg: each image of the split in turn
        shutil.copy(voc / "JPEGImages" / f"{image_id}.jpg", plain / "frame.jpg")
        result = subprocess.run([sys.executable, "-c", script], cwd=plain, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        printed.append([{"class": name, "score": float(score), "box": [float(value) for value in box]}
                        for name, score, *box in (line.split() for line in result.stdout.splitlines())])
    differences = compare(list(predicted.values()), printed, threshold)
    assert differences.within_tolerance and differences.matched == sum(map(len, predicted.values())) > 0, \
        str(differences)


@pytest.fixture(scope="module")
def other_export(voc, tmp_path_factory):
    """Another model (classes wave, point) exported as SavedModel and TFLite: its files to mix in."""
    from helpers.models import make_inference_model

    folder = tmp_path_factory.mktemp("other")
    path = make_inference_model(folder / "inference.h5", sorted((voc / "JPEGImages").glob("train_*.jpg")),
                                classes=("wave", "point"), seed=1)
    export.main([str(path), str(folder / "export"), "--formats", "savedmodel,tflite"])
    return folder / "export"


def _fingerprint(folder):
    return json.loads((folder / "model.json").read_text())["fingerprint"][:12]


def test_an_exported_file_alone_runs_on_its_own_description(exported, model_path, voc, tmp_path):
    shutil.copy(exported / "model.onnx", tmp_path)
    loaded = runtimes.load_exported(tmp_path / "model.onnx", "onnx")
    assert loaded.card == read_card(model_path) and loaded.fingerprint == export_description.fingerprint(model_path)
    boxes, scores, labels = loaded.detect(inference.read_image_bgr(voc / "JPEGImages" / "val_000.jpg"))
    assert len(boxes) == len(scores) == len(labels) > 0 and labels.dtype == np.int32


def test_a_model_json_of_another_model_is_refused_naming_both(exported, other_export, voc, tmp_path):
    """It used to lend the model its class names and image sizes (predict --runtime onnx or tf, exit 0)."""
    folder = tmp_path / "export"
    folder.mkdir()
    shutil.copy(exported / "model.onnx", folder)
    shutil.copytree(exported / "saved_model", folder / "saved_model")
    shutil.copy(other_export / "model.json", folder)
    expected = (f"describes a model with classes wave, point (fingerprint {_fingerprint(other_export)}), but "
                f"{folder / 'model.onnx'} is {_fingerprint(exported)} with classes grab, drop: model.json is from "
                "another export (they differ in classes, fingerprint); export again into a folder of its own "
                "(python -m detflow.export)")
    result = subprocess.run(
        [sys.executable, "-m", "detflow.predict", "images", str(folder), str(voc), "val", "--out-dir",
         str(tmp_path / "o"), "--csv", str(tmp_path / "d.csv"), "--json", str(tmp_path / "d.json"),
         "--runtime", "onnx", *config_options("predict", "score_threshold", "batch_size")], capture_output=True,
        text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"error: {folder / 'model.json'}: {expected}"
    assert not (tmp_path / "d.csv").exists()
    with pytest.raises(InputError) as refusal:
        runtimes.load_exported(folder, "tf")
    assert refusal.value.where == str(folder / "model.json")
    assert refusal.value.reason == expected.replace("model.onnx", "saved_model")


def test_files_of_two_models_in_one_folder_are_refused(exported, other_export, tmp_path):
    for name in ("model.onnx", "model.json"):
        shutil.copy(exported / name, tmp_path)
    shutil.copy(other_export / "model.tflite", tmp_path)
    assert runtimes.load_exported(tmp_path, "onnx").card.classes == ("grab", "drop")
    with pytest.raises(InputError) as refusal:
        runtimes.load_exported(tmp_path, "tflite")
    assert (f"but {tmp_path / 'model.tflite'} is {_fingerprint(other_export)} with classes wave, point: model.json "
            "is from another export") in refusal.value.reason


def test_a_model_json_changed_by_hand_is_refused(exported, tmp_path):
    shutil.copy(exported / "model.tflite", tmp_path)
    description = json.loads((exported / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps({**description, "image_min_side": 200}))
    with pytest.raises(InputError, match=r"model.json was changed after the export \(they differ in image_min_side\)"):
        runtimes.load_exported(tmp_path, "tflite")


@pytest.mark.parametrize("runtime", ["onnx", "tflite"])
def test_a_truncated_file_is_named_as_damaged(exported, tmp_path, runtime):
    name = runtimes.FILES[runtime]
    content = (exported / name).read_bytes()
    (tmp_path / name).write_bytes(content[:len(content) // 2])
    with pytest.raises(InputError) as refusal:
        runtimes.load_exported(tmp_path, runtime)
    assert refusal.value.where == str(tmp_path / name) and "\n" not in str(refusal.value)
    assert refusal.value.reason.startswith(f"is damaged (truncated or corrupt): the {runtime} runtime cannot read it (")
    assert refusal.value.reason.endswith("); export again (python -m detflow.export)")


@pytest.mark.parametrize("name, runtime, said", [
    ("model.onnx", "tflite", "is an ONNX model, which the tflite runtime (tensorflow) cannot run: run it with "
                             "--runtime onnx"),
    ("saved_model", "onnx", "is a TensorFlow SavedModel, which the onnx runtime (onnxruntime) cannot run: run it "
                            "with --runtime tf")])
def test_a_file_of_another_runtime_says_which_runtime_runs_it(exported, name, runtime, said):
    with pytest.raises(InputError) as refusal:
        runtimes.load_exported(exported / name, runtime)
    assert refusal.value.where == str(exported / name) and refusal.value.reason == said


def test_a_quantised_tflite_model_asked_for_on_onnxruntime_says_which_runtime_runs_it(exported, tmp_path):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(exported / "saved_model"))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]  # int8 weights
    quantised = tmp_path / "model_int8.tflite"
    quantised.write_bytes(converter.convert())
    with pytest.raises(InputError) as refusal:
        runtimes.load_exported(quantised, "onnx")
    assert str(refusal.value) == (f"{quantised}: is a TFLite model, quantised (int8), which the onnx runtime "
                                  "(onnxruntime) cannot run: run it with --runtime tflite")
    # Converted again by hand, it lost the description the export stage writes into its files.
    with pytest.raises(InputError, match="carries no description of itself .detflow_model: its classes, image sizes"):
        runtimes.load_exported(quantised, "tflite")


def test_a_runtime_that_is_not_installed_is_named(exported, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what Python sees when it is not installed
    with pytest.raises(InputError, match="the onnx runtime needs onnxruntime, which is not installed"):
        runtimes.load_exported(exported, "onnx")


def test_a_converter_that_is_not_installed_is_named_before_any_work(model_path, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    with pytest.raises(InputError, match="format onnx: needs tf2onnx, which is not installed"):
        export.export(model_path, tmp_path / "out", ["onnx"], opset=CONFIG["export"]["opset"])
    assert not (tmp_path / "out").exists()


def test_by_hand_in_the_project_folder_the_int8_model_is_calibrated_on_the_workflows_dataset(
        model_path, voc, tmp_path, monkeypatch):
    """`detflow export MODEL OUT` as docs/using-the-model.md shows it, with config.yaml's formats (onnx_int8
    among them), used to stop asking for --calibration-voc: results/voc is the workflow's dataset."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=r"needs --calibration-voc, .* \(results/voc is used when it is there\)"):
        export.main([str(model_path), "out", "--formats", "onnx_int8"])
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "voc").symlink_to(voc)
    export.main([str(model_path), "out", "--formats", "onnx_int8"])
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["model.int8.onnx", "model.json"]


def test_an_out_folder_that_is_a_file_is_refused_before_any_work(model_path, tmp_path):
    """It used to end in a FileExistsError traceback after the model was loaded and converted."""
    taken = tmp_path / "taken"
    taken.write_text("a person's file\n")
    with pytest.raises(InputError) as error:
        export.export(model_path, taken, ["savedmodel"], opset=CONFIG["export"]["opset"])
    assert str(error.value) == f"{taken}: is a file, not a folder: the export writes a folder of files"
    assert taken.read_text() == "a person's file\n"


def test_unknown_runtime_and_format_are_refused(exported, model_path, tmp_path, capsys):
    with pytest.raises(InputError, match="unknown runtime 'torch': one of keras, tf, onnx, tflite"):
        runtimes.load_exported(exported, "torch")
    with pytest.raises(InputError, match="formats are savedmodel, onnx, onnx_int8, tflite, tflite_int8"):
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
    assert ("python -m detflow.export results/model/inference.h5 results/export --formats onnx,tflite --opset 17"
            " --calibration-voc results/voc") in job

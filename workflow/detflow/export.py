"""Export stage: the inference model as a TensorFlow SavedModel, ONNX and TFLite that stand alone: a
BGR image of any size in, the model's final detections out, each file describing itself.

Every format is the standalone graph (:mod:`detflow.lib.model.standalone_graph`):
keras-retinanet's resize and the backbone's preprocessing, the network, and its
last layer's per-class non-maximum suppression with the model's own settings,
in operators each format has built in, so that a plain onnxruntime (or TFLite,
or TensorFlow) script runs it without detflow or keras-retinanet. Each file
carries the model's description (backbone, classes, image sizes, detection
settings, training, and the fingerprint of the ``.h5`` it comes from:
:mod:`detflow.lib.model.export_description`), and ``model.json`` beside them
holds the same for people. The SavedModel is written with TensorFlow, ONNX with
tf2onnx, TFLite with TensorFlow's TFLiteConverter (from that SavedModel). Two
come quantised too, ``onnx_int8`` and ``tflite_int8``: their convolutions in
int8, calibrated on training images, the rest in float. Each output is written
beside its place and renamed into it.

Bad input: a model without its description or disagreeing with it, an unknown
format, or a format whose converter is not installed, is refused in one line.
"""
import argparse
import logging
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from detflow.lib.cli import InputError, fill_from_config, prog, run
from detflow.lib.config import project_config
from detflow.lib.files import partial_path, write_atomically
from detflow.lib.inference.detector import load_inference_model
from detflow.lib.model import export_description
from detflow.lib.model.card import read_card
from detflow.lib.model.device import setup_device
from detflow.lib.model.runtimes import FILES, FORMAT_FILES, FORMATS
from detflow.lib.model.standalone_graph import INPUT, standalone_module

log = logging.getLogger(__name__)

CONVERTERS = {"onnx": "tf2onnx", "onnx_int8": "tf2onnx"}  # formats whose converter is a package of its own
CALIBRATED = ("onnx_int8", "tflite_int8")  # int8 formats whose activation ranges come from training images
INT8_OPERATORS = {"CONV_2D", "DEPTHWISE_CONV_2D"}  # what tflite_int8 quantises
CALIBRATION_IMAGES = 64  # training images, spread over the split, that set the int8 model's activation ranges
WORKFLOW_DATASET = "results/voc"  # the dataset stage's output in the project folder: calibrates by hand too


def _replace_folder(partial, folder):
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)


def save_savedmodel(module, folder):
    folder = Path(folder)
    partial = partial_path(folder)
    shutil.rmtree(partial, ignore_errors=True)
    tf.saved_model.save(module, str(partial), signatures={"serving_default": module.serve})
    _replace_folder(partial, folder)


def tflite_operator_names(model):
    """The builtin operator name (e.g. CONV_2D) of each operator code of a parsed TFLite ``schema.Model``,
    in the model's order (an operator's ``OpcodeIndex()`` indexes it)."""
    from tensorflow.lite.python import schema_py_generated as schema

    names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    codes = map(model.OperatorCodes, range(model.OperatorCodesLength()))
    return [names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())] for code in codes]


def tflite_operators(content):
    """The builtin operator names a TFLite flatbuffer uses."""
    from tensorflow.lite.python import schema_py_generated as schema

    return set(tflite_operator_names(schema.Model.GetRootAsModel(content, 0)))


def convert_tflite(saved_model):
    """The TFLite flatbuffer of the SavedModel's serving signature, in TFLite's builtin operators only (the
    converter refuses anything else: no TensorFlow "select" operators)."""
    return tf.lite.TFLiteConverter.from_saved_model(str(saved_model)).convert()


def quantize_tflite(saved_model, float_content, calibration):
    """The TFLite model of ``float_content`` (converted from ``saved_model``) with its convolutions in int8:
    weights per output channel, activations per tensor with their ranges from the ``calibration`` images (BGR
    arrays as the model takes them), and every other operator left in float by TFLite's selective
    quantisation (its QuantizationDebugger's denylist), as ``quantize_onnx`` does for ONNX: quantising the
    group normalisation too loses most of the accuracy."""
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ({INPUT: image[None]} for image in calibration)
    others = sorted(tflite_operators(float_content) - INT8_OPERATORS)
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=lambda: ([image[None]] for image in calibration),
        debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=others))
    return debugger.get_nondebug_quantized_model()


def save_onnx(module, path, opset, description):
    import tf2onnx

    proto, _ = tf2onnx.convert.from_function(module.serve, input_signature=module.serve.input_signature, opset=opset)
    export_description.add_to_onnx(proto, description)
    write_atomically(path, proto.SerializeToString())


def quantize_onnx(float_path, path, calibration):
    """The ONNX model at ``float_path`` with its convolutions in int8 (onnxruntime's static quantisation:
    weights per output channel, activations per tensor, their ranges from the ``calibration`` images, BGR
    arrays as the model takes them), written to ``path`` with the float model's metadata."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Images(CalibrationDataReader):
        def __init__(self):
            self.images = iter(calibration)

        def get_next(self):
            image = next(self.images, None)
            return None if image is None else {"image": image[None]}

    with tempfile.TemporaryDirectory() as scratch:
        quantized = Path(scratch) / "int8.onnx"
        quantize_static(str(float_path), str(quantized), Images(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"])
        proto = onnx.load(str(quantized))
    del proto.metadata_props[:]
    proto.metadata_props.extend(onnx.load(str(float_path), load_external_data=False).metadata_props)
    proto.metadata_props.add(key="quantization", value=f"int8 convolutions, calibrated on {len(calibration)} "
                                                       "training images")
    write_atomically(path, proto.SerializeToString())


def calibration_images(voc_dir, count=CALIBRATION_IMAGES):
    """Up to ``count`` images of the dataset's train split, spread over it, as BGR arrays."""
    import cv2

    from detflow.lib.data.voc_tree import VocTree

    tree = VocTree(voc_dir)
    ids = tree.split_image_ids("train")
    chosen = ids[::max(1, len(ids) // count)][:count]
    if not chosen:
        raise InputError(tree.split_file("train"), "lists no images to calibrate the int8 model with")
    return [cv2.imread(str(tree.image(image_id))) for image_id in chosen]


def check_converters(formats):
    """Refuse, before any work, a format whose converter is not installed."""
    for name in formats:
        package = CONVERTERS.get(name)
        if package:
            try:
                __import__(package)
            except ImportError as error:
                raise InputError(f"format {name}", f"needs {package}, which is not installed ({error}); install "
                                                   "it as requirements.txt pins it") from None


def make_out_dir(out_dir):
    """The export's folder, made before any work; InputError when it cannot be."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, "is a file, not a folder: the export writes a folder of files")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(out_dir, f"cannot be made ({error.strerror or error})") from None
    return out_dir


def export(model_path, out_dir, formats, *, opset, threads=None, calibration_voc=None):
    """Write the model at ``model_path`` in ``formats`` (FORMATS' names) and its description into
    ``out_dir``; return {format: path}. The int8 formats are calibrated on the train split of ``calibration_voc``."""
    unknown = [name for name in formats if name not in FORMATS]
    if unknown or not formats:
        raise InputError(f"--formats {','.join(formats)}", f"formats are {', '.join(FORMATS)} (at least one)")
    check_converters(formats)
    calibrated = [name for name in formats if name in CALIBRATED]
    if calibrated and calibration_voc is None:
        raise InputError(f"--formats {','.join(calibrated)}", "needs --calibration-voc, the dataset whose training "
                                                              "images set the int8 activation ranges ("
                                                              f"{WORKFLOW_DATASET} is used when it is there); or "
                                                              "leave them out of --formats")
    card = read_card(model_path)
    out_dir = make_out_dir(out_dir)
    setup_device(threads)
    module, card = standalone_module(load_inference_model(model_path, card), card, model_path)
    description = export_description.describe(card, export_description.fingerprint(model_path))
    export_description.add_to_module(module, description)
    calibration = calibration_images(calibration_voc) if calibrated else None
    written = {}
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as scratch:
        # TFLite is converted from a SavedModel: the exported one, or one made for the purpose.
        saved_model = out_dir / FILES["tf"] if "savedmodel" in formats else Path(scratch) / "saved_model"
        tflite = [name for name in ("tflite", "tflite_int8") if name in formats]
        if "savedmodel" in formats or tflite:
            save_savedmodel(module, saved_model)
            if "savedmodel" in formats:
                written["savedmodel"] = saved_model
        float_tflite = convert_tflite(saved_model) if tflite else None
        for name in tflite:
            written[name] = out_dir / FORMAT_FILES[name]
            content = float_tflite if name == "tflite" else quantize_tflite(saved_model, float_tflite, calibration)
            write_atomically(written[name], export_description.add_to_tflite(content, description))
    if "onnx" in formats or "onnx_int8" in formats:
        float_onnx = out_dir / FILES["onnx"]
        save_onnx(module, float_onnx, opset, description)
        if "onnx" in formats:
            written["onnx"] = float_onnx
        if "onnx_int8" in formats:
            written["onnx_int8"] = out_dir / FORMAT_FILES["onnx_int8"]
            quantize_onnx(float_onnx, written["onnx_int8"], calibration)
            if "onnx" not in formats:
                float_onnx.unlink()
    export_description.write_json(out_dir / export_description.CARD_FILE, description)
    for name, path in written.items():
        log.info("%s: %s (run it with --runtime %s)", name, path, FORMATS[name])
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(prog=prog("export"), description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the inference model (.h5) the convert stage wrote")
    parser.add_argument("out_dir", help="folder to write the exported model(s) and model.json into")
    parser.add_argument("--formats", type=lambda text: [name for name in text.split(",") if name],
                        help=f"comma-separated, of {', '.join(FORMATS)} (default: config's export.formats)")
    parser.add_argument("--opset", type=int, help="ONNX operator set version (default: config's export.opset)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for TensorFlow (default: all)")
    parser.add_argument("--calibration-voc", help="the dataset whose training images calibrate the int8 formats "
                                                  f"(default: {WORKFLOW_DATASET}, the workflow's, when it is there)")
    parser.add_argument("--config", help="config.yaml that gives the defaults (default: ./config.yaml, else the "
                                         "project's own)")
    args = parser.parse_args(argv)
    if args.formats is None or args.opset is None:
        fill_from_config(args, project_config(args.config), {"formats": "export.formats", "opset": "export.opset"})
    if args.calibration_voc is None and Path(WORKFLOW_DATASET).is_dir():
        args.calibration_voc = WORKFLOW_DATASET
    export(args.model, args.out_dir, args.formats, opset=args.opset, threads=args.threads,
           calibration_voc=args.calibration_voc)


if __name__ == "__main__":
    run(main)

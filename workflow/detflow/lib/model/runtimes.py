"""The runtimes a model can run on, and the exported models they load.

``keras`` is the inference model itself (``.h5``, tf_keras and keras-retinanet's
layers, :mod:`detflow.lib.inference.detector`). The export stage writes the model
in three portable formats, each run by its own runtime:

- ``tf``: a TensorFlow SavedModel (``saved_model/``), run by TensorFlow alone;
- ``onnx``: ONNX (``model.onnx``, converted by tf2onnx), run by onnxruntime;
- ``tflite``: TFLite (``model.tflite``), run by TensorFlow's TFLite interpreter.

Two of them also come quantised: ``model.int8.onnx`` (onnxruntime) and
``model.int8.tflite`` (TFLite), run by the same runtime as the float file.

Each is the standalone graph (:mod:`detflow.lib.model.standalone_graph`): one BGR
image as it is in (``image``, uint8, 1 x height x width x 3, any size), the
model's final detections out (``boxes`` in that image's pixels, ``scores`` best
first, ``labels``), resized, preprocessed and filtered inside with the model's
own settings. Each file carries its own description
(:mod:`detflow.lib.model.export_description`), which is the one used; a
``model.json`` beside it must agree with it. A model path may name the exported
file (or ``saved_model/`` folder) or the folder the export stage wrote.

Refused in one line naming the file: a file in another runtime's format (a
quantised TFLite model asked for on onnxruntime, say), a damaged (truncated or
corrupt) file, operators the runtime cannot run, a file that is not the export
stage's standalone graph or carries no description, and a ``model.json`` from
another model.
"""
import logging
import warnings
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from detflow.lib.cli import InputError
from detflow.lib.model import export_description
from detflow.lib.model.standalone_graph import INPUT, OUTPUTS

log = logging.getLogger(__name__)

RUNTIMES = ("keras", "tf", "onnx", "tflite")
# Export format (the export stage's name) -> the runtime that runs it, and its file in the export folder.
FORMATS = {"savedmodel": "tf", "onnx": "onnx", "onnx_int8": "onnx", "tflite": "tflite", "tflite_int8": "tflite"}
# The file each format is written to; a runtime given an export folder takes its float format's.
FORMAT_FILES = {"savedmodel": "saved_model", "onnx": "model.onnx", "onnx_int8": "model.int8.onnx",
                "tflite": "model.tflite", "tflite_int8": "model.int8.tflite"}
FILES = {"tf": "saved_model", "onnx": "model.onnx", "tflite": "model.tflite"}
FORMAT_NAMES = {"tf": "a TensorFlow SavedModel", "onnx": "an ONNX model", "tflite": "a TFLite model"}
# The standalone graph's interface: {name: dtype}.
INTERFACE = ({INPUT: "uint8"}, {"boxes": "float32", "scores": "float32", "labels": "int32"})
# What a runtime needs installed, as requirements.txt pins it.
PACKAGES = {"tf": "tensorflow", "onnx": "onnxruntime", "tflite": "tensorflow"}
# Words in a runtime's error that mean "no kernel for an operator of this file", not a damaged file.
UNSUPPORTED = ("NOT_IMPLEMENTED", "Could not find an implementation", "Didn't find op for", "unresolved custom op")
REEXPORT = "export again (python -m detflow.export)"


class Opened(NamedTuple):
    """An exported file opened by its runtime."""

    run: Callable  # image (uint8, 1 x h x w x 3) -> (boxes, scores, labels)
    inputs: dict  # {name: dtype name}
    outputs: dict
    description: str  # the file's own description (JSON text), or None


class ExportedModel:
    """An exported model on its runtime, with its own description."""

    def __init__(self, path, description, card, runtime, run):
        self.path, self.description, self.card, self.runtime = path, description, card, runtime
        self.fingerprint = description.get("fingerprint")
        self._run = run

    def detect(self, image):
        """(boxes, scores, labels) of one BGR image (uint8, height x width x 3), best first: every detection the
        model keeps, boxes in the image's pixels."""
        if image.dtype != np.uint8:
            raise TypeError(f"exported models take uint8 BGR images, as cv2.imread gives them (got {image.dtype})")
        return self._run(np.ascontiguousarray(image[None]))

    def detections(self, images, score_threshold):
        """(boxes, scores, labels) per image, best first, scoring at least ``score_threshold``; the graph takes
        one image at a time, so the images of a batch go through it one by one."""
        results = []
        for image in images:
            boxes, scores, labels = self.detect(image)
            kept = scores >= score_threshold
            results.append((boxes[kept], scores[kept], labels[kept]))
        return results


def locate(path, runtime):
    """The exported file (or SavedModel folder) of ``runtime`` that ``path`` names."""
    if runtime not in FILES:
        raise InputError(path, f"unknown runtime {runtime!r}: one of {', '.join(RUNTIMES)}")
    path = Path(path)
    if path.is_dir() and (path / FILES[runtime]).exists():
        path = path / FILES[runtime]
    if not path.exists():
        raise InputError(path, f"not found: the {runtime} runtime runs {FILES[runtime]} as the export stage writes "
                               "it (python -m detflow.export, or snakemake --cores all export)")
    return path


def _format_of(path):
    """The runtime whose format the file at ``path`` is in, from its content; None when it cannot be told."""
    if path.is_dir():
        return "tf" if (path / "saved_model.pb").is_file() else None
    with open(path, "rb") as file:
        head = file.read(8)
    if head[4:8] == b"TFL3":  # the TFLite flatbuffer's file identifier
        return "tflite"
    return "onnx" if path.suffix == ".onnx" or head[:1] == b"\x08" else None  # ONNX: field 1, ir_version, first


def _quantised_types(path):
    """The quantised tensor types (integers with scales, float16) of a TFLite file, e.g. ['int8']."""
    from tensorflow.lite.python import schema_py_generated as schema

    names = {value: name.lower() for name, value in vars(schema.TensorType).items() if not name.startswith("_")}
    model, found = schema.Model.GetRootAsModel(path.read_bytes(), 0), set()
    for graph in map(model.Subgraphs, range(model.SubgraphsLength())):
        for tensor in map(graph.Tensors, range(graph.TensorsLength())):
            quantisation = tensor.Quantization()
            if tensor.Type() == schema.TensorType.FLOAT16 or (quantisation and quantisation.ScaleLength()):
                found.add(names[tensor.Type()])
    return sorted(found)


def _check_format(path, runtime):
    """Refuse a file in another runtime's format, saying which runtime runs it."""
    found = _format_of(path)
    if found is None or found == runtime:
        return
    quantised = []
    if found == "tflite":
        try:
            quantised = _quantised_types(path)
        except Exception:  # a damaged file: its format is all that matters here
            pass
    note = f", quantised ({', '.join(quantised)})" if quantised else ""
    raise InputError(path, f"is {FORMAT_NAMES[found]}{note}, which the {runtime} runtime ({PACKAGES[runtime]}) "
                           f"cannot run: run it with --runtime {found}")


def _failure(path, runtime, error):
    """The one-line refusal of a file that its runtime could not open."""
    text = " ".join(str(error).split()) or type(error).__name__
    reason = text if len(text) <= 200 else text[:200] + " ..."
    if any(marker in text for marker in UNSUPPORTED):
        return InputError(path, f"uses operators the {runtime} runtime cannot run ({reason}): a quantised or "
                                "otherwise rewritten model needs a runtime with kernels for them; the export stage's "
                                "own file runs here")
    return InputError(path, f"is damaged (truncated or corrupt): the {runtime} runtime cannot read it ({reason}); "
                            f"{REEXPORT}")


def _check_interface(path, opened):
    """Refuse a file whose inputs and outputs are not the standalone graph's."""
    if (opened.inputs, opened.outputs) != INTERFACE:
        def listed(items):
            return ", ".join(f"{name} {dtype}" for name, dtype in items.items()) or "none"

        raise InputError(path, f"is not a standalone model of the export stage (input {listed(opened.inputs)}; "
                               f"outputs {listed(opened.outputs)}; expected input {listed(INTERFACE[0])}; outputs "
                               f"{listed(INTERFACE[1])}): {REEXPORT}")


def _own_description(path, text):
    """The file's own description (dict) and card."""
    if text is None:
        raise InputError(path, f"carries no description of itself ({export_description.KEY}: its classes, image sizes "
                               f"and fingerprint), which the export stage writes into every file: {REEXPORT}")
    return export_description.parse(text, path)


def _onnx_type(name):
    """onnxruntime's 'tensor(float)' as numpy's 'float32'."""
    name = name.removeprefix("tensor(").removesuffix(")")
    return {"float": "float32", "double": "float64"}.get(name, name)


def _onnx(path, threads):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1  # one image at a time: parallelism inside operators only
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return Opened(lambda image: session.run(list(OUTPUTS), {INPUT: image}),
                  {item.name: _onnx_type(item.type) for item in session.get_inputs()},
                  {item.name: _onnx_type(item.type) for item in session.get_outputs()},
                  export_description.from_onnx(session))


def _tflite(path, threads):
    import tensorflow as tf

    content = path.read_bytes()
    with warnings.catch_warnings():  # tf.lite.Interpreter is deprecated in favour of ai-edge-litert's, same API
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_content=content, num_threads=threads or None)
    runner = interpreter.get_signature_runner()
    output_types = {name: detail["dtype"] for name, detail in runner.get_output_details().items()}

    def run(image):
        try:
            outputs = runner(**{INPUT: image})
        except ValueError:  # the runner cannot read an output of no elements ("Invalid tensor size")
            shapes = {name: detail["shape"] for name, detail in runner.get_output_details().items()}
            if any(shape.prod() for shape in shapes.values()):
                raise
            return tuple(np.zeros(shapes[name], output_types[name]) for name in OUTPUTS)  # nothing detected
        return tuple(outputs[name] for name in OUTPUTS)

    return Opened(run, {name: np.dtype(detail["dtype"]).name for name, detail in runner.get_input_details().items()},
                  {name: np.dtype(value).name for name, value in output_types.items()},
                  export_description.from_tflite(content))


def _saved_model(path, threads):
    """``threads`` are the process's TensorFlow threads (detflow.lib.model.device.setup_device), set before."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    serve = loaded.signatures.get("serving_default")

    def run(image):
        outputs = serve(**{INPUT: tf.constant(image)})
        return tuple(outputs[name].numpy() for name in OUTPUTS)

    inputs = {name: spec.dtype.name for name, spec in serve.structured_input_signature[1].items()} if serve else {}
    outputs = {name: spec.dtype.name for name, spec in serve.structured_outputs.items()} if serve else {}
    return Opened(run, inputs, outputs, export_description.from_saved_model(loaded))


LOADERS = {"tf": _saved_model, "onnx": _onnx, "tflite": _tflite}


def load_exported(path, runtime, threads=None):
    """The exported model that ``path`` names, on ``runtime`` with ``threads`` CPU threads, described by its
    own file; InputError for an unknown runtime, a runtime not installed, a file it cannot run, and a
    model.json beside it that describes another model."""
    path = locate(path, runtime)
    _check_format(path, runtime)
    try:
        opened = LOADERS[runtime](path, threads)
    except ImportError as error:
        raise InputError(path, f"the {runtime} runtime needs {PACKAGES[runtime]}, which is not installed "
                               f"({error}); install it as requirements.txt pins it") from None
    except Exception as error:  # each runtime fails in its own way on a damaged or foreign file
        raise _failure(path, runtime, error) from None
    _check_interface(path, opened)
    description, card = _own_description(path, opened.description)
    export_description.check_beside(path, description)
    log.info("model %s on the %s runtime: %s backbone, classes %s, fingerprint %s", path, runtime, card.backbone,
             ", ".join(card.classes), str(description.get("fingerprint"))[:export_description.FINGERPRINT_SHOWN])
    return ExportedModel(path, description, card, runtime, opened.run)

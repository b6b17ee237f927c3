"""The runtimes a model can run on, and the exported models they load.

``keras`` is the inference model itself (``.h5``, tf_keras and keras-retinanet's
layers, :mod:`detflow.lib.inference.detector`). The export stage writes the same network
in three portable formats, each run by its own runtime:

- ``tf``: a TensorFlow SavedModel (``saved_model/``), run by TensorFlow alone;
- ``onnx``: ONNX (``model.onnx``, converted by tf2onnx), run by onnxruntime;
- ``tflite``: TFLite (``model.tflite``), run by TensorFlow's TFLite interpreter.

They all take the preprocessed image batch as input ``image`` and return the
decoded, clipped boxes (``boxes``) and the class scores (``scores``) of every
anchor; non-maximum suppression is done after them, in one place for all
(:mod:`detflow.lib.model.detection_filter`). Their description (the model card the
``.h5`` carries) lies beside them as ``model.json``. A model path may name the
exported file (or ``saved_model/`` folder) or the folder the export stage wrote.
"""
import logging
import warnings
from pathlib import Path

import numpy as np

from detflow.lib.cli import InputError
from detflow.lib.model.card import read_json
from detflow.lib.model.detection_filter import filter_detections

log = logging.getLogger(__name__)

RUNTIMES = ("keras", "tf", "onnx", "tflite")
# Export format (the export stage's name) -> the runtime that runs it, and its file in the export folder.
FORMATS = {"savedmodel": "tf", "onnx": "onnx", "tflite": "tflite"}
FILES = {"tf": "saved_model", "onnx": "model.onnx", "tflite": "model.tflite"}
CARD_FILE = "model.json"
INPUT, OUTPUTS = "image", ("boxes", "scores")
# What a runtime needs installed, as requirements.txt pins it.
PACKAGES = {"tf": "tensorflow", "onnx": "onnxruntime", "tflite": "tensorflow"}


class ExportedModel:
    """An exported network on its runtime, with its description and the detection filter."""

    def __init__(self, path, card, runtime, run):
        self.path, self.card, self.runtime = path, card, runtime
        self._run = run  # batch (float32, n x h x w x 3) -> (boxes, scores)

    def raw(self, batch):
        """Boxes (n, anchors, 4) and class scores (n, anchors, classes) of a preprocessed batch."""
        return self._run(np.ascontiguousarray(batch, dtype=np.float32))

    def detections(self, batch, score_threshold):
        """(boxes, scores, labels) per image, best first, scoring at least ``score_threshold``."""
        return [filter_detections(boxes, scores, self.card.detection, score_threshold)
                for boxes, scores in zip(*self.raw(batch))]


def locate(path, runtime):
    """The exported file (or SavedModel folder) of ``runtime`` that ``path`` names, and its description's path."""
    if runtime not in FILES:
        raise InputError(path, f"unknown runtime {runtime!r}: one of {', '.join(RUNTIMES)}")
    path = Path(path)
    if path.is_dir() and (path / FILES[runtime]).exists():
        path = path / FILES[runtime]
    if not path.exists():
        raise InputError(path, f"not found: the {runtime} runtime runs {FILES[runtime]} as the export stage writes "
                               "it (python -m detflow.export, or snakemake --cores all export)")
    return path, path.parent / CARD_FILE


def _check_signature(path, shapes, names, card):
    """Refuse a file whose inputs and outputs are not the export stage's, or whose class count is not its
    description's. ``shapes``: {output name: shape}."""
    if INPUT not in names or any(name not in shapes for name in OUTPUTS):
        raise InputError(path, f"is not a model exported by the export stage (inputs/outputs {', '.join(names)} "
                               f"{', '.join(shapes)}; expected {INPUT} -> {', '.join(OUTPUTS)})")
    classes_out = shapes["scores"][-1]
    if classes_out != len(card.classes):
        raise InputError(path, f"predicts {classes_out} classes, but its description ({CARD_FILE}) names "
                               f"{len(card.classes)} ({', '.join(card.classes)}): the description does not belong "
                               "to this model")


def _onnx(path, card, threads):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1  # one image batch at a time: parallelism inside operators only
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    _check_signature(path, {output.name: output.shape for output in session.get_outputs()},
                 [item.name for item in session.get_inputs()], card)
    return lambda batch: session.run(list(OUTPUTS), {INPUT: batch})


def _tflite(path, card, threads):

    import tensorflow as tf

    with warnings.catch_warnings():  # tf.lite.Interpreter is deprecated in favour of ai-edge-litert's, same API
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=threads or None)
    runner = interpreter.get_signature_runner()
    details = runner.get_output_details()
    _check_signature(path, {name: detail["shape_signature"] for name, detail in details.items()},
                 list(runner.get_input_details()), card)

    def run(batch):
        outputs = runner(**{INPUT: batch})
        return outputs["boxes"], outputs["scores"]

    return run


def _saved_model(path, card, threads):
    """``threads`` are the process's TensorFlow threads (detflow.lib.model.device.setup_device), set before."""

    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    _check_signature(path, {name: spec.shape.as_list() for name, spec in serve.structured_outputs.items()},
                 list(serve.structured_input_signature[1]), card)

    def run(batch):
        outputs = serve(**{INPUT: tf.constant(batch)})
        return outputs["boxes"].numpy(), outputs["scores"].numpy()

    return run


LOADERS = {"tf": _saved_model, "onnx": _onnx, "tflite": _tflite}


def load_exported(path, runtime, threads=None):
    """The exported model that ``path`` names, on ``runtime`` with ``threads`` CPU threads, checked against its
    description; InputError for an unknown runtime, a runtime not installed, a missing or foreign description."""
    path, card_path = locate(path, runtime)
    card = read_json(card_path, path)
    try:
        loader = LOADERS[runtime]
        run = loader(path, card, threads)
    except ImportError as error:
        raise InputError(path, f"the {runtime} runtime needs {PACKAGES[runtime]}, which is not installed "
                               f"({error}); install it as requirements.txt pins it") from None
    except InputError:
        raise
    except Exception as error:  # each runtime fails in its own way on a damaged or foreign file
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        raise InputError(path, f"cannot be loaded by the {runtime} runtime ({reason})") from None
    log.info("model %s on the %s runtime: %s backbone, classes %s", path, runtime, card.backbone,
             ", ".join(card.classes))
    return ExportedModel(path, card, runtime, run)

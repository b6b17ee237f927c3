"""The description an exported model carries inside its own file, and the check of ``model.json`` against it.

The description is the model card (:mod:`detflow.lib.model.card`: backbone, classes in label order,
image sizes, detection settings, training) plus ``fingerprint``, the SHA-256 of the inference model
(``.h5``) it was exported from, as one JSON text under the key ``detflow_model``:

- ONNX: an entry of the model's ``metadata_props`` (onnxruntime: ``session.get_modelmeta().custom_metadata_map``);
- TFLite: a metadata entry of the flatbuffer whose buffer holds the text, written with TensorFlow's
  ``flatbuffer_utils`` and read with the flatbuffer schema module it uses;
- SavedModel: a string variable ``detflow_model`` of the saved module (``tf.saved_model.load(...).detflow_model``).

``model.json`` beside the files holds the same JSON for people. The file's own description is what
a runtime uses; a ``model.json`` that says otherwise (another export's, or changed by hand) is refused,
naming both, instead of lending the model another model's class names or image sizes. Files of two
exports in one folder are caught the same way: their fingerprints differ.
"""
import hashlib
import json
from pathlib import Path

from detflow.lib.cli import InputError
from detflow.lib.files import write_atomically
from detflow.lib.model.card import ModelCard

KEY = "detflow_model"
CARD_FILE = "model.json"
FINGERPRINT_SHOWN = 12  # hex digits of a fingerprint in messages


def fingerprint(model_path):
    """SHA-256 (hex) of the inference model file that an export comes from."""
    digest = hashlib.sha256()
    with open(model_path, "rb") as model:
        for block in iter(lambda: model.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe(card, model_fingerprint):
    """The description (a dict) of a model exported from the file with ``model_fingerprint``."""
    return {**card.as_dict(), "fingerprint": model_fingerprint}


def as_text(description):
    return json.dumps(description, ensure_ascii=False)


def parse(text, where):
    """The description (a dict) in ``text`` and its card; InputError naming ``where`` when it cannot be read."""
    try:
        description = json.loads(text)
        return description, ModelCard.from_dict(description)
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(where, f"its description cannot be read ({error})") from None


def write_json(path, description):
    """``model.json``: the description for people, beside the exported files."""
    write_atomically(path, json.dumps(description, indent=1, ensure_ascii=False) + "\n")


def add_to_onnx(proto, description):
    """Put the description into an ONNX ModelProto's metadata."""
    proto.metadata_props.add(key=KEY, value=as_text(description))


def from_onnx(session):
    """The description text of an onnxruntime session's model, or None."""
    return session.get_modelmeta().custom_metadata_map.get(KEY)


def add_to_tflite(content, description):
    """The TFLite flatbuffer ``content`` (bytes) with the description as its metadata entry ``detflow_model``."""
    import numpy as np
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(as_text(description).encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = KEY, len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    return flatbuffer_utils.convert_object_to_bytearray(model)


def from_tflite(content):
    """The description text in a TFLite flatbuffer's metadata, or None."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(content, 0)
    for index in range(model.MetadataLength()):
        entry = model.Metadata(index)
        if entry.Name() == KEY.encode():
            return model.Buffers(entry.Buffer()).DataAsNumpy().tobytes().decode()
    return None


def add_to_module(module, description):
    """Attach the description to a tf.Module as a string variable, saved with it."""
    import tensorflow as tf

    setattr(module, KEY, tf.Variable(as_text(description), trainable=False, name=KEY))


def from_saved_model(loaded):
    """The description text of a loaded SavedModel, or None."""
    variable = getattr(loaded, KEY, None)
    return None if variable is None else variable.numpy().decode()


def _summary(description):
    shown = str(description.get("fingerprint") or "no fingerprint")[:FINGERPRINT_SHOWN]
    return shown, ", ".join(map(str, description.get("classes") or []))


def check_beside(path, description):
    """Refuse the ``model.json`` beside the exported file ``path`` when it says something other than the
    file's own ``description``; a file without one stands alone."""
    card_path = Path(path).parent / CARD_FILE
    if not card_path.is_file():
        return
    try:
        beside = json.loads(card_path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(card_path, f"cannot be read as JSON ({error}); {Path(path).name} describes itself: "
                                    f"delete {CARD_FILE} or export again") from None
    differing = sorted(key for key in {*beside, *description} if beside.get(key) != description.get(key))
    if not differing:
        return
    (theirs, their_classes), (own, own_classes) = _summary(beside), _summary(description)
    why = (f"{CARD_FILE} is from another export" if theirs != own else f"{CARD_FILE} was changed after the export")
    raise InputError(card_path, f"describes a model with classes {their_classes} (fingerprint {theirs}), but {path} "
                                f"is {own} with classes {own_classes}: {why} (they differ in {', '.join(differing)}); "
                                "export again into a folder of its own (python -m detflow.export)")

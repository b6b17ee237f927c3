"""The model describes itself: what an inference model is, carried inside its file.

The convert stage embeds a JSON description in the ``.h5`` file's root
attributes (``detflow_model``), written before the file is renamed into place,
so a model copied anywhere keeps it: the backbone, the FPN and head width, the
class names in label order, the image sizes it was trained with, the training
variant and run it comes from and the detection settings of its last layer. Every stage
that uses a model (predict, evaluate, prelabel, Label Studio drafts, anything
later) reads these from the model, never from config a second time; options
that describe the model are only checked against it. Reading needs only
h5py, not TensorFlow. The exported formats (SavedModel, ONNX, TFLite) carry
it too, inside their files and beside them as ``model.json``
(:mod:`detflow.lib.model.export_description`).
"""
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5py

from detflow.lib.cli import InputError

ATTRIBUTE = "detflow_model"
VERSION = 1
# Options of the model-using stages that describe the model: (option, card field).
SHAPE_OPTIONS = (("backbone", "backbone"), ("feature_size", "feature_size"), ("image_min_side", "image_min_side"),
                 ("image_max_side", "image_max_side"))


@dataclass(frozen=True)
class ModelCard:
    """What a model is and how it sees images."""

    backbone: str
    feature_size: int
    classes: tuple  # class names in label order: label i is classes[i]
    image_min_side: int
    image_max_side: int
    training: dict = field(default_factory=dict)  # the variant, run and epoch it comes from
    detection: dict = field(default_factory=dict)  # convert_model's NMS, score threshold, max detections
    head_norm: str = "none"  # the heads: keras-retinanet's ("none") or group-normalised ("group")

    @property
    def class_map(self):
        """{name: label}, as keras-retinanet's generators take classes."""
        return {name: label for label, name in enumerate(self.classes)}

    def as_dict(self):
        return {"version": VERSION, **asdict(self), "classes": list(self.classes)}

    @classmethod
    def from_dict(cls, content):
        fields = {name: content[name] for name in cls.__dataclass_fields__ if name in content}
        return cls(**{**fields, "classes": tuple(fields["classes"])})


# How a person gets the workflow's inference model back when the file is damaged or foreign.
REBUILD = ("the workflow's results/model/inference.h5 is written again from the chosen snapshot by "
           "`snakemake --cores all --forcerun convert`")


def embed(model_path, card):
    """Write ``card`` into the model file (before it is renamed into place)."""
    with h5py.File(model_path, "a") as model:
        model.attrs[ATTRIBUTE] = json.dumps(card.as_dict(), ensure_ascii=False)


def read_card(model_path):
    """The description carried by the model file at ``model_path``; InputError when it has none."""
    model_path = Path(model_path)
    if model_path.is_dir():
        raise InputError(model_path, "is a folder, not a model file: give the inference model (.h5), or run an "
                                     "export folder with --runtime tf, onnx or tflite")
    if not model_path.is_file() or model_path.stat().st_size == 0:
        raise InputError(model_path, "no model here yet (file not found or empty): `snakemake --cores all` trains "
                                     "one and writes results/model/inference.h5 (labelling.draft_model in "
                                     "config.yaml may name another for drafts and next frames)")
    try:
        with h5py.File(model_path, "r") as model:
            text = model.attrs.get(ATTRIBUTE)
    except OSError as error:
        raise InputError(model_path, f"is not a readable .h5 model file ({error}); {REBUILD}") from None
    if text is None:
        raise InputError(model_path, "carries no description of itself (backbone, classes, image sizes): it was "
                                     f"not made by the convert stage; {REBUILD}")
    return _parse(model_path, text)


def _parse(path, text):
    try:
        return ModelCard.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(path, f"its description cannot be read ({error})") from None


def check_options(card, model_path, options):
    """Refuse options that describe the model (``options``: {option: value or None}) when they disagree with it."""
    for option, name in SHAPE_OPTIONS:
        given = options.get(option)
        if given is not None and given != getattr(card, name):
            raise InputError(model_path, f"--{option.replace('_', '-')} {given} disagrees with the model, which "
                                         f"has {name} {getattr(card, name)}; leave the option out (the model says it)")


def check_classes(card, model_path, dataset_classes, where):
    """Refuse a model whose class names (in label order) differ from the dataset's."""
    names = list(dataset_classes)
    if names != list(card.classes):
        raise InputError(model_path, f"was trained on the classes {', '.join(card.classes)} (in label order), but "
                                     f"{where} has {', '.join(names)}: its detections would get the wrong names")

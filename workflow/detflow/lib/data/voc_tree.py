"""The Pascal VOC tree that keras-retinanet reads, and its class map.

``JPEGImages/<id>.jpg``, ``Annotations/<id>.xml``, ``ImageSets/Main/<split>.txt``
(image ids, one per line) and ``classes.json`` (``{name: label}``, labels 0,
1, ... in the order of the classes). The dataset stage writes the tree, the
splits stage the lists; every other stage finds its parts here.
"""
import json
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from detflow.lib.cli import InputError
from detflow.lib.files import write_atomically

IMAGES_DIR = "JPEGImages"
ANNOTATIONS_DIR = "Annotations"
CLASSES_FILE = "classes.json"


@dataclass(frozen=True)
class VocTree:
    """Paths in a VOC tree rooted at ``root``."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def images(self):
        return self.root / IMAGES_DIR

    @property
    def annotations(self):
        return self.root / ANNOTATIONS_DIR

    @property
    def lists(self):
        return self.root / "ImageSets" / "Main"

    @property
    def classes_file(self):
        return self.root / CLASSES_FILE

    def image(self, image_id):
        return self.images / f"{image_id}.jpg"

    def annotation(self, image_id):
        return self.annotations / f"{image_id}.xml"

    def split_file(self, split):
        return self.lists / f"{split}.txt"

    def split_image_ids(self, split):
        """Image ids listed in ImageSets/Main/<split>.txt."""
        path = self.split_file(split)
        if not path.is_file():
            raise InputError(path, f"is missing: the splits stage writes the {split} list")
        return path.read_text().split()


def class_names(names):
    """Class names as compared everywhere: Unicode NFC (``lâcher`` typed either way is one class)."""
    return [unicodedata.normalize("NFC", name) for name in names]


def read_classes(classes_json, expected=None):
    """The dataset's {name: label} mapping, in label order; with ``expected`` (config's list) it must
    be the same names in the same order."""
    try:
        classes = json.loads(Path(classes_json).read_text())
    except (OSError, ValueError) as error:
        raise InputError(classes_json, f"cannot be read as JSON: {error}") from None
    if not isinstance(classes, dict) or not classes or sorted(classes.values()) != list(range(len(classes))):
        raise InputError(classes_json, 'expected {"class": label, ...} with labels 0, 1, ... in order')
    names = sorted(classes, key=classes.get)
    if expected is not None and names != class_names(expected):
        raise InputError(
            classes_json,
            f"the dataset's classes {names} differ from the configured classes {list(expected)} "
            "(names and order must match: rerun the dataset stage, or fix `classes` in config.yaml)",
        )
    return {name: classes[name] for name in names}


def write_classes(classes_json, class_ids):
    """Write the {name: label} mapping."""
    write_atomically(classes_json, json.dumps(class_ids, indent=2, ensure_ascii=False) + "\n")

"""The data of a training run: keras-retinanet's Pascal VOC generators over the
splits (augmented as its train.py augments, and naming an image they cannot
decode), the checks that a run can learn from them, and the fingerprint of
everything an epoch's result depends on.

``settings`` is a :class:`detflow.lib.training.settings.Settings` (config.yaml's ``train``).
"""
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
from keras_retinanet.preprocessing.pascal_voc import PascalVocGenerator
from keras_retinanet.utils.image import random_visual_effect_generator
from keras_retinanet.utils.transform import random_transform_generator
from tensorflow import keras

from detflow.lib.cli import InputError
from detflow.lib.code_graph import module_files
from detflow.lib.data.voc_tree import VocTree
from detflow.lib.model import retinanet

log = logging.getLogger(__name__)

ROTATE_SHEAR = 0.1  # radians of rotation and of shear at most, keras-retinanet train.py's

TRAINING_STAGE = "detflow.train"  # its code is part of the fingerprint


class NamingPascalVocGenerator(PascalVocGenerator):
    """keras-retinanet's PascalVocGenerator, whose image reading names the file that cannot be decoded
    (PIL's "image file is truncated" names none). Inside ``fit`` the generator runs under TensorFlow,
    which wraps the error in its own: the error is also kept in ``failure`` for the stage to raise."""

    failure = None

    def load_image(self, image_index):
        try:
            return super().load_image(image_index)
        except (OSError, ValueError, SyntaxError) as error:
            self.failure = InputError(
                self.image_path(image_index),
                f"cannot be decoded as an image ({error}): the file is damaged; restore it or run the dataset "
                "stage again, which refuses such images")
            raise self.failure from None


def raise_reading_failure(generators):
    """Raise the InputError of an image a generator could not decode, if any (else return)."""
    for generator in generators:
        if generator.failure is not None:
            raise generator.failure from None


def voc_generator(voc_dir, split, classes, settings, preprocess_image, **options):
    """keras-retinanet's PascalVocGenerator over ImageSets/Main/<split>.txt, with errors naming the file."""
    split_file = VocTree(voc_dir).split_file(split)
    if not split_file.is_file():
        raise InputError(split_file, "is missing: the splits stage writes it")
    if not split_file.read_text().split():
        raise InputError(split_file, f"lists no images: the {split} split is empty")
    try:
        return NamingPascalVocGenerator(
            str(voc_dir), split, classes=classes, batch_size=settings.batch_size,
            image_min_side=settings.image_min_side, image_max_side=settings.image_max_side,
            preprocess_image=preprocess_image, **options,
        )
    except OSError as error:  # an image of the split that cannot be opened
        raise InputError(getattr(error, "filename", None) or split_file, f"cannot be read: {error}")


def count_boxes(generator, split_file):
    """Boxes per class of a split, read with the generator's own VOC reader (as training will)."""
    counts = {generator.label_to_name(label): 0 for label in sorted(generator.labels)}
    for index, image_id in enumerate(generator.image_names):
        try:
            annotations = generator.load_annotations(index)
        except ValueError as error:
            raise InputError(VocTree(generator.data_dir).annotation(image_id), str(error))
        for label in annotations["labels"]:
            counts[generator.label_to_name(int(label))] += 1
    return counts


def check_dataset(voc_dir, train_generator, validation_generator):
    """Boxes per class per split; an error when training or validation has no box at all."""
    boxes = {}
    for split, generator in (("train", train_generator), ("val", validation_generator)):
        split_file = VocTree(voc_dir).split_file(split)
        boxes[split] = count_boxes(generator, split_file)
        if not any(boxes[split].values()):
            consequence = (
                "validation mAP cannot be computed (keras-retinanet's Evaluate divides by the number of "
                "classes with boxes)" if split == "val" else "there is nothing to learn"
            )
            raise InputError(split_file, f"its {generator.size()} images hold no boxes: {consequence}")
        for name, count in boxes[split].items():
            if count == 0:
                log.warning("%s: no box of class %r; its AP is left out of mAP", split_file, name)
        log.info("%s: %d images, boxes per class %s", split, generator.size(), boxes[split])
    return boxes


def fingerprint(voc_dir, classes, settings, generators):
    """A hash of everything an epoch's result depends on: the listed images and
    annotations, the classes, the settings that change an epoch's result and the training code."""
    digest = hashlib.sha256()
    relevant = settings.fingerprinted()
    digest.update(json.dumps({"classes": classes, "settings": relevant}, sort_keys=True).encode())
    if settings.weights not in ("none", "imagenet"):
        digest.update(Path(settings.weights).read_bytes())
    for generator in generators:
        for index, image_id in enumerate(generator.image_names):
            digest.update(image_id.encode())
            digest.update(Path(generator.image_path(index)).read_bytes())
            digest.update(VocTree(voc_dir).annotation(image_id).read_bytes())
    for module in module_files(TRAINING_STAGE):
        digest.update(module.read_bytes())
    return digest.hexdigest()


def training_generators(voc_dir, classes, settings, initial_epoch):
    """Training (shuffled, augmented when asked) and validation generators."""
    preprocess_image = retinanet.backbone(settings.backbone).preprocess_image
    augmentation = {}
    if settings.augment:
        # keras-retinanet train.py's --random-transform ranges. Its rotation and shear turn a box's corners and
        # take the box around them, larger than the object: off unless asked for (train.rotate_shear).
        turn = ROTATE_SHEAR if settings.rotate_shear else 0.0
        augmentation = {
            "transform_generator": random_transform_generator(
                prng=np.random.RandomState(settings.seed + initial_epoch),
                min_rotation=-turn, max_rotation=turn,
                min_translation=(-0.1, -0.1), max_translation=(0.1, 0.1),
                min_shear=-turn, max_shear=turn,
                min_scaling=(0.9, 0.9), max_scaling=(1.1, 1.1),
                flip_x_chance=0.5, flip_y_chance=0.5 if settings.flip_vertical else 0.0,
            ),
            "visual_effect_generator": random_visual_effect_generator(
                contrast_range=(0.9, 1.1), brightness_range=(-0.1, 0.1),
                hue_range=(-0.05, 0.05), saturation_range=(0.95, 1.05),
            ),
        }
    train_generator = voc_generator(voc_dir, "train", classes, settings, preprocess_image, **augmentation)
    validation_generator = voc_generator(voc_dir, "val", classes, settings, preprocess_image, shuffle_groups=False)
    return train_generator, validation_generator


class EpochOfSteps(keras.utils.Sequence):
    """``steps`` batches per epoch from a keras-retinanet generator, going round it as often as needed.

    keras-retinanet's ``--steps`` assumed Keras 2.3's ``fit_generator``, which
    cycled a Sequence for as many steps as asked. tf.keras instead stops the
    whole training ("Your input ran out of data") once an epoch asks for more
    batches than the Sequence holds. The generator reshuffles at every epoch end.
    """

    def __init__(self, generator, steps):
        self.generator = generator
        self.steps = steps

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        return self.generator[index % len(self.generator)]

    def on_epoch_end(self):
        self.generator.on_epoch_end()

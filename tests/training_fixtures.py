"""A small synthetic Pascal VOC dataset for the training stages' tests, laid out
as the dataset and splits stages write it (results/voc/...).

Images of 128-192 px with one or two drawn hands on blurred colour noise: a
"grab" is a closed fist (a round palm with knuckles), a "drop" an open hand
(a palm with four spread fingers).
"""
import json
from pathlib import Path

import cv2
import numpy as np

from detflow.lib.pascal_voc import write_annotation

CLASSES = {"grab": 0, "drop": 1}
# Every training setting (config.yaml's train section; the stage has no defaults), for a tiny model.
TINY_SETTINGS = dict(backbone="mobilenet128_0.25", weights="none", feature_size=16, epochs=2, steps=3, batch_size=2,
                     learning_rate=1e-3, image_min_side=96, image_max_side=128, augment=False, freeze_backbone=False,
                     patience=0, keep_best=1, seed=1, min_free_mb=500)


def settings_options(**overrides):
    """The training settings as the train stage's command-line options."""
    options = []
    for name, value in {**TINY_SETTINGS, **overrides}.items():
        options += [f"--{name.replace('_', '-')}", str(value).lower() if isinstance(value, bool) else str(value)]
    return options
SKIN = (120, 160, 215)  # BGR


def _background(random, height, width):
    noise = random.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(noise, (width, height), interpolation=cv2.INTER_LINEAR), (0, 0), 3)


def _draw_hand(image, name, x, y, size):
    """Draw a hand whose bounding box is (x, y, x + size, y + size); return that box."""
    if name == "grab":
        centre = (x + size // 2, y + size // 2)
        cv2.circle(image, centre, size // 2, SKIN, -1)
        for k in range(4):
            knuckle_x = x + size // 5 + k * size // 5
            cv2.line(image, (knuckle_x, y + size // 4), (knuckle_x, y + size // 2), (60, 90, 140), 2)
    else:
        palm_top = y + size // 2
        cv2.rectangle(image, (x + size // 6, palm_top), (x + size - size // 6, y + size - 1), SKIN, -1)
        finger = max(size // 9, 2)
        for k in range(4):
            finger_x = x + size // 6 + k * (size * 2 // 3 - finger) // 3
            cv2.rectangle(image, (finger_x, y), (finger_x + finger, palm_top), SKIN, -1)
    return x, y, x + size, y + size


def _image(random, names):
    height, width = (int(value) for value in random.integers(128, 193, 2))
    image = _background(random, height, width)
    objects = []
    slots = [(0, 0), (width // 2, height // 2)] if len(names) == 2 else [(0, 0)]
    for name, (left, top) in zip(names, slots):
        room_x, room_y = (width - left, height - top) if len(names) == 1 else (width // 2, height // 2)
        size = int(random.integers(max(min(room_x, room_y) // 2, 24), min(room_x, room_y) - 4))
        x = left + int(random.integers(2, room_x - size - 1))
        y = top + int(random.integers(2, room_y - size - 1))
        xmin, ymin, xmax, ymax = _draw_hand(image, name, x, y, size)
        # Pascal VOC pixel coordinates are 1-based.
        objects.append({"name": name, "xmin": xmin + 1, "ymin": ymin + 1, "xmax": xmax, "ymax": ymax})
    return image, objects


def make_voc(root, train=16, val=6, seed=0, val_boxes=True):
    """Write a VOC tree at ``root`` with ``train`` and ``val`` images; return ``root``.

    ``val_boxes=False`` gives validation images without any object.
    """
    root = Path(root)
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    random = np.random.default_rng(seed)
    names = list(CLASSES)
    splits = {"train": [], "val": []}
    for split, count in (("train", train), ("val", val)):
        for index in range(count):
            image_id = f"{split}_{index:03d}"
            picked = [names[(index // 2 + k) % 2] for k in range(1 + index % 2)]
            image, objects = _image(random, picked)
            if split == "val" and not val_boxes:
                objects = []
            cv2.imwrite(str(root / "JPEGImages" / f"{image_id}.jpg"), image)
            height, width = image.shape[:2]
            write_annotation(root / "Annotations" / f"{image_id}.xml", filename=f"{image_id}.jpg",
                             width=width, height=height, objects=objects, folder="JPEGImages")
            splits[split].append(image_id)
    for split, ids in splits.items():
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{image_id}\n" for image_id in ids))
    (root / "classes.json").write_text(json.dumps(CLASSES))
    return root

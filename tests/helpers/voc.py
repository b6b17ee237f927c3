"""Pascal VOC for the tests: labelImg-style annotations (written with detflow.lib.data.pascal_voc) of
frames written with OpenCV, the frames and labels of whole videos, a synthetic VOC tree laid out as
the dataset and splits stages write it (results/voc/...), and the real plums tree extracted from its
zip.

The synthetic tree's images are 128-192 px with one or two drawn hands on blurred colour noise: a
"grab" is a closed fist (a round palm with knuckles), a "drop" an open hand (a palm with four
spread fingers).
"""
import json
import zipfile
from pathlib import Path

import cv2
import numpy as np

from detflow.lib.data.pascal_voc import write_annotation

from .media import FRAME_SIZE, write_image
from .workflow import REPO

CLASSES = {"grab": 0, "drop": 1}
# The real plums data in ../shared: PlumsVOC.zip (15 labelImg files from someone else's machine) and
# raw_frames/ (60 camera frames). Tests using it skip when it is absent (the plums fixture).
PLUMS = REPO.parent / "shared" / "data" / "plums"
SKIN = (120, 160, 215)  # BGR


def make_frames(root, frames_per_video, size=FRAME_SIZE):
    """``root/<video>/<video>_<index:06d>.jpg`` for each video; returns {image id: path}."""
    images = {}
    for number, (video, count) in enumerate(sorted(frames_per_video.items())):
        for index in range(count):
            image_id = f"{video}_{index:06d}"
            images[image_id] = write_image(root / video / f"{image_id}.jpg", size, seed=number * 1000 + index)
    return images


def box(index, size=FRAME_SIZE):
    """A box that fits inside a frame, different for each index."""
    width, height = size
    xmin, ymin = 1 + index % 20, 1 + index % 15
    return {"xmin": xmin, "ymin": ymin, "xmax": min(width, xmin + 30), "ymax": min(height, ymin + 25)}


def annotate(annotations_dir, image_id, class_names, size=FRAME_SIZE):
    """A labelImg-style annotation of ``image_id`` with one box per name in ``class_names``."""
    annotations_dir.mkdir(parents=True, exist_ok=True)
    objects = [{"name": name, **box(number, size)} for number, name in enumerate(class_names)]
    path = annotations_dir / f"{image_id}.xml"
    write_annotation(path, filename=f"{image_id}.jpg", width=size[0], height=size[1], objects=objects,
                     image_path=f"C:\\Users\\someone\\frames\\{image_id}.jpg")
    return path


def labelled_videos(root, videos, frames=4, classes=("grab", "drop"), size=FRAME_SIZE):
    """Frames of ``videos`` (of ``size``) under root/frames and annotations under root/annotations.

    Video number k shows class k % len(classes) in every frame, plus a second
    class in its last frame, and its first frame is a negative.
    Returns (annotations dir, list of frame dirs).
    """
    images = make_frames(root / "frames", {video: frames for video in videos}, size)
    for number, video in enumerate(sorted(videos)):
        for index in range(frames):
            names = [] if index == 0 else [classes[number % len(classes)]]
            if index == frames - 1:
                names.append(classes[(number + 1) % len(classes)])
            annotate(root / "annotations", f"{video}_{index:06d}", names, size)
    frame_dirs = sorted({path.parent for path in images.values()})
    return root / "annotations", frame_dirs


def extract_plums(plums, target):
    """The plums VOC tree (15 labelImg files from someone else's machine) extracted under ``target``."""
    with zipfile.ZipFile(plums / "PlumsVOC.zip") as archive:
        archive.extractall(target)
    return target / "PlumsVOC"


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

"""Real small datasets for the dataset and splits tests: JPEG frames written with
OpenCV, labelImg-style annotations written with detflow.lib.pascal_voc, the
plums VOC tree extracted from its zip, and short videos for Snakemake runs."""
import zipfile

import cv2
import numpy as np

from detflow.lib.pascal_voc import write_annotation

FRAME_SIZE = (96, 72)  # width, height


def write_image(path, size=FRAME_SIZE, seed=0):
    """A small noisy JPEG (noise, so that each frame differs)."""
    width, height = size
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), pixels)
    return path


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


def labelled_videos(root, videos, frames=4, classes=("grab", "drop")):
    """Frames of ``videos`` under root/frames and annotations under root/annotations.

    Video number k shows class k % len(classes) in every frame, plus a second
    class in its last frame, and its first frame is a negative.
    Returns (annotations dir, list of frame dirs).
    """
    images = make_frames(root / "frames", {video: frames for video in videos})
    for number, video in enumerate(sorted(videos)):
        for index in range(frames):
            names = [] if index == 0 else [classes[number % len(classes)]]
            if index == frames - 1:
                names.append(classes[(number + 1) % len(classes)])
            annotate(root / "annotations", f"{video}_{index:06d}", names)
    frame_dirs = sorted({path.parent for path in images.values()})
    return root / "annotations", frame_dirs


def extract_plums(plums, target):
    """The plums VOC tree (15 labelImg files from someone else's machine) extracted under ``target``."""
    with zipfile.ZipFile(plums / "PlumsVOC.zip") as archive:
        archive.extractall(target)
    return target / "PlumsVOC"


def write_video(path, frames, size=(160, 120), fps=5, seed=0):
    """A short MJPG video of moving noise, written with OpenCV."""
    width, height = size
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened()
    rng = np.random.default_rng(seed)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    writer.release()
    return path

"""Drafts: the model's boxes for a frame as a labelImg annotation for a person to correct, written beside
the person's labels, never over them and never over an earlier draft.

The files are labelImg's own format (:func:`detflow.lib.data.pascal_voc.write_annotation`): boxes in
1-based VOC pixel coordinates, ``<path>`` the frame in the labelling folder (relative to the project folder), so labelImg opens each frame
with its draft.
"""
from pathlib import Path

from detflow.lib.data.pascal_voc import write_annotation
from detflow.lib.files import creating


def voc_objects(detections, width, height):
    """Detections as labelImg objects: 1-based VOC pixel coordinates (keras-retinanet subtracts 1 when
    it reads them), rounded and kept inside the image; boxes empty after that are dropped."""
    objects = []
    for detection in detections:
        x1, y1, x2, y2 = (value + 1 for value in detection.box)
        xmin, xmax = (min(max(round(value), 1), width) for value in (x1, x2))
        ymin, ymax = (min(max(round(value), 1), height) for value in (y1, y2))
        if xmin < xmax and ymin < ymax:
            objects.append({"name": detection.name, "xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax})
    return objects


def write_draft(path, image_file, image, detections, labelling_images_dir):
    """Write a labelImg draft at ``path`` (atomically; never over an existing file); return its box count."""
    height, width = image.shape[:2]
    objects = voc_objects(detections, width, height)
    with creating(path) as partial:  # FileExistsError where a draft appeared meanwhile: never replace one
        write_annotation(partial, filename=image_file.name, width=width, height=height, depth=image.shape[2],
                         objects=objects, image_path=str(Path(labelling_images_dir) / image_file.name))
    return len(objects)

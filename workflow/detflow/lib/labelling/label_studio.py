"""Label Studio's formats, shared by the round trip through its files (detflow.label_studio) and the ML
backend that serves the model's boxes to it (detflow.label_studio_backend): the labelling configuration,
the URL under which it serves a local file, a detection as a ``rectanglelabels`` result, a prediction, and
the model's version.
"""
import hashlib
import posixpath
import urllib.parse
from pathlib import Path
from xml.etree import ElementTree

from detflow.lib.cli import InputError

IMAGE_NAME = "image"  # the Image tag's name, and the task data key it shows ($image)
LABEL_NAME = "label"  # the RectangleLabels tag's name
LOCAL_FILES_PREFIX = "/data/local-files/?d="


def labelling_config(classes):
    """Label Studio's labelling configuration: boxes of ``classes`` (in this order) on one image."""
    view = ElementTree.Element("View")
    ElementTree.SubElement(view, "Image", name=IMAGE_NAME, value=f"${IMAGE_NAME}", zoom="true")
    labels = ElementTree.SubElement(view, "RectangleLabels", name=LABEL_NAME, toName=IMAGE_NAME)
    for name in classes:
        ElementTree.SubElement(labels, "Label", value=name)
    ElementTree.indent(view)
    return ElementTree.tostring(view, encoding="unicode") + "\n"


def local_files_url(image, document_root):
    """The URL under which Label Studio serves ``image`` when its document root is ``document_root``."""
    image, root = Path(image).resolve(), Path(document_root).resolve()
    if root not in image.parents:
        raise InputError(image, f"is not inside the document root {root}, from which Label Studio serves "
                                "local files (label_studio.document_root in config.yaml)")
    return LOCAL_FILES_PREFIX + urllib.parse.quote(image.relative_to(root).as_posix())


def local_file(url, document_root):
    """The file a task's image URL names under Label Studio's local-files serving from ``document_root``, or
    None for another kind of URL (an upload, a web address)."""
    parts = urllib.parse.urlsplit(url)
    local = urllib.parse.parse_qs(parts.query).get("d") if parts.path.rstrip("/").endswith("/local-files") else None
    if not local:
        return None
    relative = posixpath.normpath(local[-1])
    if relative.startswith("../") or relative == ".." or posixpath.isabs(relative):
        return None  # Label Studio itself serves nothing outside its document root
    return Path(document_root) / relative


def image_name(url):
    """The file name in a task's image URL: the ``d=`` path of a local file, else the URL's last part."""
    parts = urllib.parse.urlsplit(url)
    local = urllib.parse.parse_qs(parts.query).get("d")
    path = local[-1] if local else urllib.parse.unquote(parts.path)
    return posixpath.basename(path)


def box_result(detection, width, height, index):
    """A detection (0-based pixel box) as a Label Studio ``rectanglelabels`` result, or None when
    nothing of it is inside the image."""
    x1, y1, x2, y2 = detection.box
    x1, x2 = (min(max(value, 0.0), width) for value in (x1, x2))
    y1, y2 = (min(max(value, 0.0), height) for value in (y1, y2))
    if x2 <= x1 or y2 <= y1:
        return None
    return {
        "id": f"draft{index}",
        "type": "rectanglelabels",
        "from_name": LABEL_NAME,
        "to_name": IMAGE_NAME,
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "value": {"x": 100 * x1 / width, "y": 100 * y1 / height, "width": 100 * (x2 - x1) / width,
                  "height": 100 * (y2 - y1) / height, "rotation": 0, "rectanglelabels": [detection.name]},
        "score": round(detection.score, 4),
    }


def model_version(model_path):
    """The model file's name and the start of its SHA-256: a new model is a new version."""
    digest = hashlib.sha256()
    with open(model_path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return f"{Path(model_path).name} {digest.hexdigest()[:12]}"


def prediction(detections, width, height, version):
    """The Label Studio prediction of an image's detections (boxes inside the image), or None without any:
    an empty one, submitted unchanged, would say "nothing here" without anyone having looked. Its ``score``
    is the mean of its boxes' scores (Label Studio sorts and samples tasks by it)."""
    results = [result for index, detection in enumerate(detections, 1)
               if (result := box_result(detection, width, height, index)) is not None]
    if not results:
        return None
    return {"model_version": version, "score": round(sum(result["score"] for result in results) / len(results), 4),
            "result": results}

"""Finding the raw videos and giving each a name that is safe everywhere.

A video's name (its id) is the file name without extension, with every
character other than letters, digits, ``-`` and ``_`` replaced by ``_``: ids
become frame file names, Pascal VOC image ids (which keras-retinanet splits on
whitespace) and Snakemake wildcards. Two files with the same id are kept
together, so that the job for that id can refuse them by name.
"""
import re
import unicodedata
from pathlib import Path

from detflow.cli import InputError

_UNSAFE = re.compile(r"[^\w-]+")


def video_id(path):
    """The safe name of a video file: ``my clip (2).mp4`` -> ``my_clip_2``."""
    stem = unicodedata.normalize("NFC", Path(path).stem)
    return _UNSAFE.sub("_", stem).strip("_") or "video"


def discover_videos(directory, extensions):
    """Map each video id to the sorted list of its files in ``directory``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(directory, "video folder not found (set videos.dir in config.yaml)")
    endings = {f".{ext.lower()}" for ext in extensions}
    found = {}
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.suffix.lower() in endings:
            found.setdefault(video_id(path), []).append(path)
    if not found:
        raise InputError(directory, f"no videos in this folder (looked for {', '.join(sorted(endings))})")
    return found

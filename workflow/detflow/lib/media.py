"""Raw videos: finding them, giving each a name that is safe everywhere, and opening them.

A video's name (its id) is the file name without extension, with every
character other than letters, digits, ``-`` and ``_`` replaced by ``_``: ids
become frame file names, Pascal VOC image ids (which keras-retinanet splits on
whitespace) and Snakemake wildcards. Two files with the same id are kept
together, so that the job for that id can refuse them by name.

Videos are decoded with OpenCV's FFmpeg backend. The frame count a container
declares may be an estimate (duration x frame rate), so a video is called
truncated only when decoding ends clearly short of it.
"""
import re
import unicodedata
from pathlib import Path

import cv2

from detflow.lib.cli import InputError

_UNSAFE = re.compile(r"[^\w-]+")
# A container's declared frame count may be an estimate (duration x frame rate):
# decoding may end this many frames (or this fraction) short of it without the
# file being called truncated.
COUNT_TOLERANCE_FRAMES = 2
COUNT_TOLERANCE_FRACTION = 0.02


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


def single_video(videos):
    """The one file of a video id; two files with the same id (clip.mp4 and clip.avi, or a b.mp4 and a_b.mp4)
    are refused."""
    videos = [Path(video) for video in videos]
    if len(videos) > 1:
        others = ", ".join(str(video) for video in videos[1:])
        how = ("has the same name apart from its extension" if len({video.stem for video in videos}) == 1
               else "has a name that differs only in characters that video names replace with '_'")
        raise InputError(videos[0], f"{others} {how} (both would be video '{video_id(videos[0])}'); "
                                    "rename or remove one of them")
    return videos[0]


def open_video(path, threads=0):
    """An opened cv2.VideoCapture, or InputError saying why ``path`` is not a readable video."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "video file not found")
    if path.stat().st_size == 0:
        raise InputError(path, "empty file (0 bytes), not a video")
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, threads])
    if not capture.isOpened():
        raise InputError(path, "not a video OpenCV can read (not a video file, or a corrupt, truncated or zero-frame one)")
    return capture


def declared_frame_count(capture):
    """The frame count the container declares, or None where it gives no usable one."""
    count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    return int(count) if 0 < count < 1e9 else None


def ended_early(declared, decoded):
    """Whether decoding stopped clearly before the frame count the container declares
    (declared counts are estimates in some containers, hence the tolerance)."""
    return declared is not None and decoded < declared - max(COUNT_TOLERANCE_FRAMES, COUNT_TOLERANCE_FRACTION * declared)

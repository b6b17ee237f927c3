"""Real small videos for the video-stage tests, written with OpenCV's VideoWriter:
frames whose content identifies their index, every container the workflow
accepts, and the broken files of the bad-input cases."""
import hashlib
from pathlib import Path

import cv2
import numpy as np

from conftest import PLUMS

FRAME_SIZE = (160, 120)  # width, height
FOURCC = {".mp4": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "XVID"}
# The demo of the Snakemake tests: three tiny videos.
TINY_DEMO = {"seed": 5, "videos": 3, "seconds": 2, "fps": 10, "width": 160, "height": 120}
# The tiny end-to-end run (the whole-workflow and cluster tests): 4 demo videos of 2 s split
# 2/1/1 by seed 24, 6 frames labelled per video, 2 epochs of 3 steps of a small MobileNet.
TINY_WORKFLOW = dict(
    demo={**TINY_DEMO, "videos": 4},
    labelling={"frames_per_video": 6},
    split={"seed": 24, "train": 0.5, "val": 0.25, "test": 0.25},
    train={"backbone": "mobilenet128_0.25", "feature_size": 16, "epochs": 2, "steps": 3, "batch_size": 2,
           "learning_rate": 1e-3, "image_min_side": 96, "image_max_side": 128},
)


def pattern_frame(index, size=FRAME_SIZE):
    """A frame unlike its neighbours: a colour ramp, a bright square that moves and the index in digits."""
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width]
    frame = np.stack([(xs * 255 // width + index * 7) % 256, (ys * 255 // height) % 256,
                      np.full_like(xs, (index * 37) % 256)], axis=2).astype(np.uint8)
    x, y = (index * 13) % (width - 30), (index * 7) % (height - 30)
    frame[y:y + 30, x:x + 30] = 255
    cv2.putText(frame, str(index), (5, height - 10), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 0), 3)
    return frame


def write_video(path, frames, fps=10):
    """Write ``frames`` (an int n for pattern frames 0..n-1, or a list of images) with the container's codec."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [pattern_frame(index) for index in range(frames)] if isinstance(frames, int) else frames
    height, width = images[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC[path.suffix.lower()]), fps, (width, height))
    assert writer.isOpened(), path
    for image in images:
        writer.write(image)
    writer.release()
    return path


def decoded_frames(path):
    """Every frame of a video as OpenCV decodes it."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


def truncated_copy(source, target, fraction=0.5):
    """The first ``fraction`` of a video file's bytes: a download or copy cut short."""
    data = Path(source).read_bytes()
    Path(target).write_bytes(data[:int(len(data) * fraction)])
    return Path(target)


def zero_frame_video(path):
    """A valid container holding no frame: a VideoWriter opened and closed."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC[Path(path).suffix.lower()]), 10, FRAME_SIZE)
    writer.release()
    assert Path(path).exists()
    return Path(path)


def not_a_video(path):
    """A text file with a video extension."""
    Path(path).write_text("these are my notes, not a video\n" * 50)
    return Path(path)


def plums_video(path, fps=5):
    """The 60 raw plums camera frames encoded as a video (real footage); their paths in order."""
    sources = sorted((PLUMS / "raw_frames").glob("*.jpg"))
    write_video(path, [cv2.imread(str(source)) for source in sources], fps=fps)
    return sources


def file_hashes(folder):
    """SHA-256 of every file under ``folder``, by relative path."""
    folder = Path(folder)
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}

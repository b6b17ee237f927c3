"""Videos and images written with OpenCV: frames whose content identifies their index, seeded
noise, every container the workflow accepts, the broken files of the bad-input cases, and file
hashes that prove an input was left unchanged."""
import hashlib
from pathlib import Path

import cv2
import numpy as np

FRAME_SIZE = (160, 120)  # width, height of the helpers' videos and images, unless a test gives another
# The codec each container is written with.
# Frame extraction that keeps every frame: what the tests of a video's frames ask for unless they say otherwise.
EVERY_FRAME = dict(every_nth=1, fps=None, start_s=0.0, end_s=None, max_frames=None, skip_duplicates=False,
                   duplicate_threshold=1.5, jpeg_quality=95)
FOURCC = {".mp4": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "XVID"}


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


def noise_frames(count, size=FRAME_SIZE, seed=0):
    """``count`` images of seeded noise, each different from the others."""
    width, height = size
    random = np.random.default_rng(seed)
    return [random.integers(0, 255, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def write_image(path, size=FRAME_SIZE, seed=0):
    """A noisy JPEG (noise, so that each image differs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), noise_frames(1, size, seed)[0])
    return path


def write_video(path, frames, fps=10, size=FRAME_SIZE):
    """Write ``frames`` with the container's codec (FOURCC): an int n for pattern frames 0..n-1 of ``size``,
    or a list of images (e.g. ``noise_frames``), which give the video their own size."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [pattern_frame(index, size) for index in range(frames)] if isinstance(frames, int) else frames
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


def plums_video(path, plums, fps=5):
    """The 60 raw camera frames of the plums data (real footage) encoded as a video; their paths in order."""
    sources = sorted((Path(plums) / "raw_frames").glob("*.jpg"))
    write_video(path, [cv2.imread(str(source)) for source in sources], fps=fps)
    return sources


def file_hashes(folder):
    """SHA-256 of every file under ``folder``, by relative path."""
    folder = Path(folder)
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}

"""Raw videos: finding them, giving each a name that is safe everywhere, and opening them (and streams).

A video's name (its id) is the file name without extension, with every
character other than letters, digits, ``-`` and ``_`` replaced by ``_``: ids
become frame file names, Pascal VOC image ids (which keras-retinanet splits on
whitespace) and Snakemake wildcards. Two files with the same id are kept
together, so that the job for that id can refuse them by name. An id longer
than :data:`detflow.lib.names.MAX_NAME_BYTES` (UTF-8) is cut and ends in a hash
of the whole name, so that every file name a stage derives from it fits in the
255 bytes file systems allow; a trailing frame number (``_000123``) is never
cut from the name of a frame (:func:`frame_id`), so the id of a frame file is its name.

Videos are decoded with OpenCV's FFmpeg backend, which turns frames upright as
the rotation metadata of phone videos says. The frame count a container
declares may be an estimate (duration x nominal frame rate, e.g. Matroska, or
variable-frame-rate video), so a video is called truncated only on evidence:
a frame that cannot be decoded, or a stream whose last frame comes clearly
before the duration the container declares.
"""
import os
import re
import unicodedata
from pathlib import Path
from urllib.parse import urlsplit

import cv2

from detflow.lib.cli import InputError
from detflow.lib.names import MAX_NAME_BYTES, fitted, periodic_problem

_UNSAFE = re.compile(r"[^\w-]+")
_FRAME_NUMBER = re.compile(r"_\d{6,9}$")
MAX_ID_BYTES = MAX_NAME_BYTES
# A container's declared frame count may be an estimate (duration x frame rate):
# decoding may end this many frames (or this fraction) short of it without the
# file being called truncated.
COUNT_TOLERANCE_FRAMES = 2
COUNT_TOLERANCE_FRACTION = 0.02
NO_FRAMES = "no frame could be decoded (a zero-frame, corrupt or truncated video)"
FRAME_SUFFIXES = (".jpg", ".jpeg")  # images in frame folders: the frames stage writes JPEG, a person may copy .jpeg
OPEN_TIMEOUT_MS = 5000  # give up opening a stream after this long
READ_TIMEOUT_MS = 5000  # a stream that sends no frame for this long has dropped
# OpenCV's open parameters of a camera or stream: neither waits forever.
STREAM_TIMEOUTS = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS]


def _safe(text, empty="video"):
    return _UNSAFE.sub("_", unicodedata.normalize("NFC", text)).strip("_") or empty


def video_id(path):
    """The safe name of a video file: ``my clip (2).mp4`` -> ``my_clip_2``; a name of more than
    MAX_ID_BYTES is cut and ends in ``_`` and a hash of the whole name."""
    return fitted(_safe(Path(path).stem))


def stream_id(url):
    """The safe name of a stream, from its host and path (never the user name or password a URL may
    hold): ``rtsp://admin:pw@192.168.1.5:554/live/ch1`` -> ``192_168_1_5_live_ch1``."""
    address = urlsplit(url)
    return fitted(_safe(f"{address.hostname or ''}{address.path}", empty="stream"))


def frame_id(path):
    """The safe name of a frame or of its annotation file, ``<video id>_<frame index>``: the name of a frame
    the frames stage wrote, unchanged; a longer name cut as a video id, its frame number kept."""
    name = _safe(Path(path).stem)
    frame_number = _FRAME_NUMBER.search(name)
    return fitted(name, frame_number.group() if frame_number else "")


def discover_videos(directory, extensions):
    """Map each video id to the sorted list of its files in ``directory``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(directory, "video folder not found (set videos.dir in config.yaml)")
    endings = {f".{ext.lower()}" for ext in extensions}
    found = {}
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() not in endings:
            continue
        if path.is_symlink() and not path.exists():
            raise InputError(path, f"broken symbolic link (its target {os.readlink(path)} does not exist); "
                                   "restore the target or remove the link")
        if path.is_file():
            name = video_id(path)
            problem = periodic_problem(name)
            if problem:
                raise InputError(path, f"its video name '{name}' {problem}; rename the file")
            found.setdefault(name, []).append(path)
    if not found:
        raise InputError(directory, f"no videos in this folder (looked for {', '.join(sorted(endings))})")
    return found


def discover_new_videos(directory, training_dir, extensions):
    """The videos of a folder of new recordings (predict.new_videos_dir), as discover_videos finds them.
    Refused: a folder that is missing or holds no video, and the folder of the training videos (videos.dir)
    itself, whose videos would then be presented as new while being trained on."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(directory, "is a file, not a folder" if directory.exists() else "folder not found")
    if training_dir is not None and directory.resolve() == Path(training_dir).resolve():
        raise InputError(directory, f"is the folder of the training videos (videos.dir: {training_dir}); new "
                                    "footage is never trained on, so it needs a folder of its own")
    return discover_videos(directory, extensions)


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
    """An opened cv2.VideoCapture at the first frame, or InputError saying why ``path`` is not a readable video:
    every stage that reads a video file (frames, predict, live) refuses the same files with the same words."""
    path = Path(path)
    if path.is_dir():
        raise InputError(path, "is a folder, not a video file")
    if not path.is_file():
        raise InputError(path, "video file not found")
    if path.stat().st_size == 0:
        raise InputError(path, "empty file (0 bytes), not a video")
    capture = _capture(path, threads)
    # A container holding no decodable frame opens all the same: try the first frame, then start again.
    if not capture.grab():
        capture.release()
        raise InputError(path, NO_FRAMES)
    capture.release()
    return _capture(path, threads)


def open_stream(url):
    """An opened cv2.VideoCapture of a stream URL (rtsp://, http(s)://, ...) read by FFmpeg, or InputError
    saying why it cannot be read: every command that reads streams (live, predict) refuses with the same words."""
    capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, STREAM_TIMEOUTS)
    if not capture.isOpened():
        raise InputError(url, f"stream cannot be opened (unreachable, refused or not a video stream within "
                              f"{OPEN_TIMEOUT_MS / 1000:g} s)")
    return capture


def quiet_opencv():
    """OpenCV's and FFmpeg's own messages off: a source that cannot be opened is said in one line, by us."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read when FFmpeg is first used
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def _capture(path, threads):
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, threads])
    if not capture.isOpened():
        raise InputError(path, "not a video OpenCV can read (not a video file, or a corrupt, truncated or zero-frame one)")
    capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)  # upright frames (the default of OpenCV 5, made explicit)
    return capture


def rotation(capture):
    """Degrees the video's rotation metadata turns its frames by (0 without any)."""
    return int(round(capture.get(cv2.CAP_PROP_ORIENTATION_META))) % 360


def nominal_fps(capture):
    """The frame rate the container declares (an average, or a guess for raw streams), or None."""
    fps = capture.get(cv2.CAP_PROP_FPS)
    return fps if 0 < fps < 1000 else None


def declared_duration(capture):
    """Seconds the container says the video lasts (frame count / nominal frame rate), or None."""
    count, fps = declared_frame_count(capture), nominal_fps(capture)
    return count / fps if count and fps else None


def ended_before(duration, last_timestamp, fps):
    """Whether the last frame (starting at ``last_timestamp``, lasting about 1/fps) ends clearly before
    ``duration``: the stream stopped early."""
    if duration is None or last_timestamp is None or fps is None:
        return False
    tolerance = max(COUNT_TOLERANCE_FRAMES / fps, COUNT_TOLERANCE_FRACTION * duration)
    return last_timestamp + 1 / fps < duration - tolerance


def declared_frame_count(capture):
    """The frame count the container declares, or None where it gives no usable one."""
    count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    return int(count) if 0 < count < 1e9 else None


def ended_early(declared, decoded):
    """Whether decoding stopped clearly before the frame count the container declares
    (declared counts are estimates in some containers, hence the tolerance)."""
    return declared is not None and decoded < declared - max(COUNT_TOLERANCE_FRAMES, COUNT_TOLERANCE_FRACTION * declared)


class FrameClock:
    """The time of each decoded frame: the stream's timestamp while timestamps increase; from the first one
    that does not (stuck at 0, or going backwards) on, the last good time plus frames since / nominal fps."""

    def __init__(self, video, fps):
        self.video, self.fps = video, fps
        self.last = None  # (frame index, timestamp) of the last frame with a usable timestamp
        self.fallback_from = None  # index of the first frame without one
        self.intervals = None  # (shortest, longest) interval between usable timestamps

    def time(self, frame_index, stream_timestamp):
        if self.fallback_from is None and (self.last is None or stream_timestamp > self.last[1]):
            if self.last is not None:
                step = (stream_timestamp - self.last[1]) / (frame_index - self.last[0])
                low, high = self.intervals or (step, step)
                self.intervals = (min(low, step), max(high, step))
            self.last = (frame_index, stream_timestamp)
            return stream_timestamp
        if self.fallback_from is None:
            if self.fps is None:
                raise InputError(self.video, f"frame {frame_index} has no usable timestamp and the file declares no "
                                             "frame rate to count time by")
            self.fallback_from = frame_index
        return self.last[1] + (frame_index - self.last[0]) / self.fps

    def source(self):
        """What the current frame's time comes from, for the manifest."""
        return "stream" if self.fallback_from is None else f"index at {self.fps:g} fps"

    def variable(self):
        """Whether the stream's frame intervals vary (variable frame rate), beyond millisecond rounding."""
        return self.intervals is not None and self.intervals[1] - self.intervals[0] > 0.002 + 0.25 * self.intervals[0]


def stopped_short(capture, clock, decoded):
    """How decoding ended clearly before the video's declared end (the evidence of a truncated file), or None.
    With usable timestamps the last frame's time is compared with the declared duration; without, the
    decoded count with the declared count, an estimate."""
    if clock.fallback_from is None:
        duration, last = declared_duration(capture), clock.last[1] if clock.last else None
        if ended_before(duration, last, nominal_fps(capture)):
            return f"decoding stopped at frame {decoded} ({last:.2f} s) of the {duration:.2f} s the file declares"
        return None
    declared = declared_frame_count(capture)
    if ended_early(declared, decoded):
        return (f"decoding stopped at frame {decoded} of the about {declared} the file declares, an estimate: the "
                "frames carry no usable timestamps")
    return None

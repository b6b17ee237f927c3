"""Frame extraction: one video in, JPEG frames and a manifest out.

Frames are named ``{video}_{frame_index:06d}.jpg`` where ``frame_index`` counts
decoded frames from 0, so a file always leads back to its source frame and
keeps its name when other videos are added or settings change. Which frames
are kept:

- every ``every_nth`` frame (frame indices divisible by it), or, when ``fps``
  is set, the first frame of every 1/fps-second slot of the video's own
  timestamps (slots counted from time 0);
- only frames with ``start_s <= timestamp < end_s``;
- with ``skip_duplicates``, a frame whose mean absolute grey-level difference
  to the last kept frame (on a small thumbnail) is below
  ``duplicate_threshold`` is skipped and recorded as a near-duplicate;
- at most ``max_frames`` kept frames.

Timestamps are the video's own (variable frame rates included). From the first
frame whose timestamp does not come after the previous one (stuck at 0, as in
raw H.264 streams, or going backwards) on, a frame's time is counted from the
last good one at the nominal frame rate, with a warning, and the manifest says
so. Frames come out upright where rotation metadata (phone video) says so.

The manifest lists every frame that passed the stride and time selection:
``frame_index,timestamp_s,file,kept,reason,timestamp_from,source`` where
``timestamp_from`` is ``stream`` or ``index at <fps> fps`` and ``source`` is the
video's file name (its id may be shortened). Frames between the chosen ones
are only grabbed (decoded, never converted); JPEG encoding and writing run in
a thread pool alongside decoding (OpenCV releases the GIL). Frames before
``start_s`` are decoded too, so indices are exact in every container.
"""
import argparse
import csv
import logging
import math
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from detflow.lib.cli import InputError, parse_bool, parse_optional, prog, run
from detflow.lib.data.frame_lists import MANIFEST_COLUMNS
from detflow.lib.data.videos import (
    NO_FRAMES, FrameClock, declared_frame_count, nominal_fps, open_video, rotation, single_video, stopped_short,
    video_id,
)
from detflow.lib.progress import Progress

log = logging.getLogger(__name__)

THUMBNAIL_WIDTH = 64


def frame_file_name(video, frame_index):
    return f"{video}_{frame_index:06d}.jpg"


class FrameSampler:
    """Decides frame by frame which frames the stride, the time range and the frame rate select."""

    def __init__(self, *, every_nth, fps, start_s, end_s):
        self.every_nth, self.fps, self.start_s, self.end_s = every_nth, fps, start_s, end_s
        self._last_slot = None

    def past_end(self, timestamp):
        return self.end_s is not None and timestamp >= self.end_s

    def selects(self, frame_index, timestamp):
        if timestamp < self.start_s or self.past_end(timestamp):
            return False
        if self.fps is None:
            return frame_index % self.every_nth == 0
        slot = math.floor(timestamp * self.fps + 1e-6)
        if slot == self._last_slot:
            return False
        self._last_slot = slot
        return True


def thumbnail(image):
    """Small grey image for near-duplicate comparison."""
    height, width = image.shape[:2]
    size = (THUMBNAIL_WIDTH, max(round(THUMBNAIL_WIDTH * height / width), 1))
    return cv2.cvtColor(cv2.resize(image, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY).astype(np.float32)


def _write_jpeg(path, image, quality):
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"{path}: JPEG encoding failed")
    path.write_bytes(data)


class DuplicateFilter:
    """Recognises a frame that barely differs from the last kept one (mean grey-level difference of thumbnails)."""

    def __init__(self, threshold):
        self.threshold = threshold
        self.previous = None  # (frame index, thumbnail) of the last kept frame

    def reason_to_skip(self, frame_index, image):
        """Why the frame is a near-duplicate, or None (then it becomes the last kept frame)."""
        small = thumbnail(image)
        if self.previous is not None:
            difference = float(np.mean(np.abs(small - self.previous[1])))
            if difference < self.threshold:
                return (f"near-duplicate of frame {self.previous[0]} "
                        f"(mean difference {difference:.2f} < {self.threshold:g})")
        self.previous = (frame_index, small)
        return None


def _select_and_write(capture, clock, sampler, duplicates, out_dir, video, written, *, max_frames, jpeg_quality,
                      threads, progress):
    """Decode the video, write the selected frames (appended to ``written`` as they go); return
    (manifest rows, frames decoded, whether selection stopped before the end)."""
    rows, pending, frame_index, stopped_early = [], deque(), -1, False
    name = video_id(video)
    with ThreadPoolExecutor(max_workers=max(threads, 1)) as pool:
        while capture.grab():
            frame_index += 1
            progress.update()
            timestamp = clock.time(frame_index, capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
            if sampler.past_end(timestamp) or (max_frames is not None and len(written) >= max_frames):
                stopped_early = True
                break
            if not sampler.selects(frame_index, timestamp):
                continue
            ok, image = capture.retrieve()
            if not ok:
                raise InputError(video, f"frame {frame_index} could not be decoded (corrupt video)")
            described = (f"{timestamp:.3f}", clock.source(), video.name)
            reason = duplicates.reason_to_skip(frame_index, image) if duplicates else None
            if reason:
                rows.append((frame_index, described[0], "", "false", reason, *described[1:]))
                continue
            path = out_dir / frame_file_name(name, frame_index)
            pending.append(pool.submit(_write_jpeg, path, image, jpeg_quality))
            written.append(path)
            rows.append((frame_index, described[0], path.name, "true", "", *described[1:]))
            while len(pending) > 2 * max(threads, 1):  # bound the frames held in memory
                pending.popleft().result()
        for job in pending:  # raises a failed write here
            job.result()
    return rows, frame_index + 1, stopped_early


def extract_frames(videos, out_dir, manifest, *, every_nth, fps, start_s, end_s, max_frames, skip_duplicates,
                   duplicate_threshold, jpeg_quality, threads=2):
    """Write the selected frames of a video as JPEGs into ``out_dir`` and its manifest CSV.

    ``videos`` is the list of files of one video id (exactly one is accepted).
    Returns the number of frames written. Raises InputError for an unreadable,
    empty or truncated video, or a time range holding no frame.
    """
    video = single_video(videos)
    out_dir, manifest = Path(out_dir), Path(manifest)
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise InputError(out_dir, "output folder is not empty; remove it or choose another one")
    capture = open_video(video, threads)
    clock = FrameClock(video, nominal_fps(capture))
    sampler = FrameSampler(every_nth=every_nth, fps=fps, start_s=start_s, end_s=end_s)
    duplicates = DuplicateFilter(duplicate_threshold) if skip_duplicates else None
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        with Progress(f"{video.name}: decoding", declared_frame_count(capture), "frames") as progress:
            rows, decoded, stopped_early = _select_and_write(
                capture, clock, sampler, duplicates, out_dir, video, written, max_frames=max_frames,
                jpeg_quality=jpeg_quality, threads=threads, progress=progress)
        _check_complete(video, capture, clock, decoded, stopped_early)
        if not written:
            until = "the end" if end_s is None else f"end_s={end_s:g} s"
            raise InputError(video, f"no frame between start_s={start_s:g} s and {until} ({decoded} frames decoded)")
        manifest.parent.mkdir(parents=True, exist_ok=True)
        with open(manifest, "w", newline="") as handle:
            table = csv.writer(handle)
            table.writerow(MANIFEST_COLUMNS)
            table.writerows(rows)
    except BaseException:
        for path in written:  # leave no partial result behind
            path.unlink(missing_ok=True)
        if created:
            out_dir.rmdir()
        raise
    finally:
        capture.release()
    log.info("%s: decoded %d frames, selected %d, kept %d (%d near-duplicates) in %s",
             video, decoded, len(rows), len(written), len(rows) - len(written), out_dir)
    return len(written)


def _check_complete(video, capture, clock, decoded, stopped_early):
    """Refuse a video that decodes no frame, or whose stream ends well before the duration its container
    declares; log what the decoding showed of its frame count, frame rate, timestamps and rotation."""
    if decoded == 0:
        raise InputError(video, NO_FRAMES)
    declared, fps = declared_frame_count(capture), nominal_fps(capture)
    short = None if stopped_early else stopped_short(capture, clock, decoded)
    if short:
        raise InputError(video, f"{short} (truncated or corrupt video)")
    if clock.fallback_from is None:
        last = clock.last[1]
        if not stopped_early and declared is not None and declared != decoded:
            log.info("%s: the file declares %d frames, an estimate (its duration x nominal %g fps); the %d decoded "
                     "frames run to its end (%.2f s)", video, declared, fps, decoded, last)
    else:
        log.warning("%s: frames from %d on carry no usable timestamp (stuck or going backwards): their times are "
                    "counted by frame index at %g fps, the nominal frame rate the file declares (for a raw stream a "
                    "guess); the manifest says so (timestamp_from)", video, clock.fallback_from, clock.fps)
        if declared is None:
            log.warning("%s: the file declares no frame count or duration: a truncated end cannot be recognised", video)
    if clock.variable():
        low, high = clock.intervals
        log.info("%s: variable frame rate (frames %.0f to %.0f ms apart): frames.fps selects by timestamp, "
                 "frames.every_nth by frame index", video, 1000 * low, 1000 * high)
    turned = rotation(capture)
    if turned:
        height, width = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        log.info("%s: turned upright as its rotation metadata (%d degrees) says: frames are %dx%d", video, turned,
                 width, height)


def main(argv=None):
    parser = argparse.ArgumentParser(prog=prog("frames"), description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", nargs="+", help="the video file (two files mean a name clash and are refused)")
    parser.add_argument("--out-dir", required=True, help="folder for the JPEG frames (new or empty)")
    parser.add_argument("--manifest", required=True, help="CSV listing every selected frame and whether it was kept")
    parser.add_argument("--every-nth", type=int, required=True, help="keep frames whose index is a multiple of this")
    parser.add_argument("--fps", type=parse_optional(float), required=True,
                        help="keep frames at this rate instead (none: use --every-nth)")
    parser.add_argument("--start-s", type=float, required=True, help="first time kept, in seconds")
    parser.add_argument("--end-s", type=parse_optional(float), required=True,
                        help="time at which to stop, in seconds (none: the end)")
    parser.add_argument("--max-frames", type=parse_optional(int), required=True,
                        help="keep at most this many frames (none: no limit)")
    parser.add_argument("--skip-duplicates", type=parse_bool, required=True, help="skip near-duplicate frames")
    parser.add_argument("--duplicate-threshold", type=float, required=True,
                        help="mean absolute grey difference (0-255) under which a frame is a near-duplicate")
    parser.add_argument("--jpeg-quality", type=int, required=True, help="JPEG quality, 0-100")
    parser.add_argument("--threads", type=int, default=2, help="threads for decoding and JPEG encoding")
    args = parser.parse_args(argv)
    extract_frames(args.videos, args.out_dir, args.manifest, every_nth=args.every_nth, fps=args.fps,
                   start_s=args.start_s, end_s=args.end_s, max_frames=args.max_frames,
                   skip_duplicates=args.skip_duplicates, duplicate_threshold=args.duplicate_threshold,
                   jpeg_quality=args.jpeg_quality, threads=args.threads)


if __name__ == "__main__":
    run(main)

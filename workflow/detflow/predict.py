"""Prediction stage: the inference model on the images of dataset splits and on
whole videos, as annotated images and videos plus detections in CSV and JSON,
and for videos the gesture events the detections make (:mod:`detflow.lib.inference.events`).

The workflow's rules run ``predict images`` (a dataset split) and ``predict
video`` (one video, every option given). A person runs ``predict SOURCE...``:
video and image files, folders, glob patterns and stream URLs
(:mod:`detflow.lib.data.sources`), with config.yaml's settings and the
workflow's model by default, into the next free ``results/predict/run<n>``.

The model and how it sees images come from the model itself
(:mod:`detflow.lib.inference.detector`, :mod:`detflow.lib.model.card`); boxes are
written in the original image's pixel coordinates (0-based, as
keras-retinanet's). Drawing and writing run in a background thread while the
model works on the next batch.

Bad input: a model whose description is missing, or whose classes differ from
the dataset's, is refused; an image that cannot be read is reported and
skipped, the others are done; a video that ends before the length its
container declares is annotated up to where it ends, and the JSON says so. A
SOURCE that names nothing readable is refused before anything is written; a
source that fails while it is read leaves none of its outputs behind. Ctrl+C
ends the source being read with complete outputs.
"""
import argparse
import csv
import itertools
import json
import logging
import math
import sys
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import cv2

from detflow.lib.cli import InputError, add_model_options, fill_from_config, model_options, prog, run
from detflow.lib.config import project_config
from detflow.lib.data.sources import find_sources
from detflow.lib.data.videos import (
    NO_FRAMES, FrameClock, declared_frame_count, nominal_fps, open_stream, open_video, quiet_opencv, single_video,
    stopped_short, stream_id, video_id,
)
from detflow.lib.data.voc_tree import VocTree
from detflow.lib.files import partial_path, replacing, write_atomically
from detflow.lib.inference.background import BackgroundWriter
from detflow.lib.inference.detector import Unreadable, detect_images, detect_stream, load_detector
from detflow.lib.inference.drawing import draw_detections, draw_frame_label, write_jpeg
from detflow.lib.inference.events import EventSettings, event_counts, video_events, write_events
from detflow.lib.model.runtimes import RUNTIMES
from detflow.lib.names import fitted
from detflow.lib.progress import Progress
from detflow.lib.stopping import Stopper

log = logging.getLogger(__name__)

IMAGE_COLUMNS = ("image", "class", "score", "x1", "y1", "x2", "y2")
VIDEO_COLUMNS = ("frame_index", "timestamp_s", "class", "score", "x1", "y1", "x2", "y2")
DEFAULT_FPS = 25.0  # for a video whose container gives no frame rate
DEFAULT_MODEL = "results/model/inference.h5"  # of predict SOURCE...: the workflow's model
RUNS = Path("results/predict")  # predict SOURCE... writes into its next free run<n>
OUTPUT_ENDINGS = (".mp4", ".csv", ".json", ".events.csv", ".events.json")  # of each video or stream
IMAGES, DETECTIONS = "images", "detections"  # the annotated images' folder; their detections' .csv and .json


# ---------------------------------------------------------------- outputs


def _write_csv(path, columns, rows):
    with replacing(path) as partial, open(partial, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(columns)
        writer.writerows(rows)


def _write_json(path, content):
    write_atomically(path, json.dumps(content, indent=1, ensure_ascii=False) + "\n")


def predict_split(detector, voc_dir, split, out_dir, csv_path, json_path, *, batch_size):
    """Annotate the images of a dataset split and write their detections; return the JSON content.

    An image that cannot be read is listed under ``unreadable`` and skipped;
    InputError when no image of a non-empty split can be read.
    """
    tree = VocTree(voc_dir)
    image_ids = tree.split_image_ids(split)
    images, unreadable, rows = _annotate_images(detector, [(image_id, tree.image(image_id)) for image_id in image_ids],
                                                out_dir, split, batch_size=batch_size)
    if image_ids and not images:
        raise InputError(tree.images, f"none of the {len(image_ids)} images of the {split} split can be "
                                      f"read, e.g. {unreadable[0]['file']}: {unreadable[0]['reason']}")
    counts = _detection_counts(detector, images, rows, column=1)
    content = {"split": split, "score_threshold": detector.score_threshold, "classes": counts["classes"],
               "images_listed": len(image_ids), "images_predicted": len(images),
               "images_with_detections": counts["with_detections"], "detections": counts["detections"],
               "unreadable": unreadable, "images": images}
    _write_csv(csv_path, IMAGE_COLUMNS, rows)
    _write_json(json_path, content)
    if not image_ids:
        log.warning("the %s split lists no images: nothing to predict", split)
    log.info("%s: %d of %d images predicted, %d with detections, detections per class %s%s", split, len(images),
             len(image_ids), content["images_with_detections"], content["detections"],
             f"; {len(unreadable)} unreadable" if unreadable else "")
    return content


def predict_images(detector, images, out_dir, csv_path, json_path, *, batch_size, stop=None):
    """Annotate image files, ``images`` as (name, path), into ``out_dir/<name>.jpg`` and write all their
    detections in one CSV and JSON; return the JSON content. An image that cannot be read is listed
    under ``unreadable`` and skipped. ``stop``: as :func:`predict_video`'s."""
    found, unreadable, rows = _annotate_images(detector, images, out_dir, "images", batch_size=batch_size, stop=stop)
    files = dict(images)
    counts = _detection_counts(detector, found, rows, column=1)
    content = {"score_threshold": detector.score_threshold, "classes": counts["classes"], "images_given": len(images),
               "images_predicted": len(found), "images_with_detections": counts["with_detections"],
               "detections": counts["detections"], "stopped": stop.reason if stop else None,
               "unreadable": unreadable, "images": [{"file": str(files[image["image"]]), **image} for image in found]}
    _write_csv(csv_path, IMAGE_COLUMNS, rows)
    _write_json(json_path, content)
    return content


def _annotate_images(detector, images, out_dir, what, *, batch_size, stop=None):
    """Detect in each image of ``images``, (name, path), and write it annotated as ``out_dir/<name>.jpg``;
    return (images as the JSON lists them, unreadable ones, CSV rows)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    found, unreadable, rows = [], [], []
    with BackgroundWriter() as writer, Progress(f"{what}: predicting", len(images), "images") as meter:
        for image_id, image, detections in detect_images(detector, _until(images, stop), batch_size):
            meter.update()
            if isinstance(image, Unreadable):
                unreadable.append({"image": image_id, "file": image.file, "reason": image.reason})
                continue
            height, width = image.shape[:2]
            found.append({"image": image_id, "width": width, "height": height,
                          "detections": [detection.as_dict() for detection in detections]})
            rows.extend([image_id, *detection.as_row()] for detection in detections)
            # read_image_bgr's array is a channel-reversed view, which OpenCV cannot draw on.
            writer.submit(_annotate_and_write, out_dir / f"{image_id}.jpg", image.copy(), detections)
    return found, unreadable, rows


def _until(items, stop):
    """``items`` until ``stop`` (called with the number taken so far) gives a reason to stop."""
    for taken, item in enumerate(items):
        if stop is not None and stop(taken):
            return
        yield item


def _detection_counts(detector, items, rows, *, column):
    """What sums up the detections: the classes, the items (images or frames) with detections, and
    the detections per class (from the class ``column`` of the CSV rows)."""
    names = list(detector.names.values())
    counts = Counter(row[column] for row in rows)
    return {"classes": names, "with_detections": sum(1 for item in items if item["detections"]),
            "detections": {name: counts[name] for name in names}}


def _annotate_and_write(path, image, detections):
    write_jpeg(path, draw_detections(image, detections))


# ---------------------------------------------------------------- videos


def _frames(capture, clock, stride, progress, stop=None):
    """(frame index, timestamp in seconds, BGR frame) of every ``stride``-th decoded frame, timed as the
    frames stage times them (``clock``), until the video ends or ``stop`` (called with the number of frames
    taken so far) gives a reason. ``progress["decoded"]`` counts decoded frames as they go."""
    index, taken = -1, 0
    while not (stop is not None and stop(taken)) and capture.grab():
        index += 1
        progress["decoded"] = index + 1
        timestamp = clock.time(index, capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
        if index % stride:
            continue
        ok, frame = capture.retrieve()
        if not ok:
            break
        taken += 1
        yield (index, timestamp), frame


def _frame_rate(capture, video):
    fps = capture.get(cv2.CAP_PROP_FPS)
    if not (math.isfinite(fps) and fps > 0):
        log.warning("%s declares no frame rate; assuming %g frames/s", video, DEFAULT_FPS)
        fps = DEFAULT_FPS
    return fps


def _annotate_video(detector, frames_in, out_video, fps, stride, batch_size, meter):
    """Detect in the frames of ``frames_in`` and write the annotated video; return (frames, CSV rows,
    (frame index, seconds, detections) of each frame, (width, height))."""
    frames, rows, detected, writer, size = [], [], [], None, None
    try:
        with BackgroundWriter() as background:
            for (frame_index, timestamp), frame, detections in detect_stream(detector, frames_in, batch_size):
                meter.update()
                if writer is None:
                    size = frame.shape[1], frame.shape[0]
                    writer = cv2.VideoWriter(str(out_video), cv2.VideoWriter_fourcc(*"mp4v"), fps / stride, size)
                    if not writer.isOpened():
                        raise InputError(out_video, "cannot be written by OpenCV's VideoWriter (MPEG-4)")
                frames.append({"frame_index": frame_index, "timestamp_s": round(timestamp, 3),
                               "detections": [detection.as_dict() for detection in detections]})
                rows.extend([frame_index, f"{timestamp:.3f}", *detection.as_row()] for detection in detections)
                detected.append((frame_index, timestamp, detections))
                background.submit(_annotate_frame, writer, frame, detections, frame_index, timestamp)
    finally:
        if writer is not None:
            writer.release()
    return frames, rows, detected, size


def predict_video(detector, videos, out_video, csv_path, json_path, *, events_csv=None, events_json=None,
                  event_settings, stride, batch_size, threads=0, stop=None):
    """Annotate every ``stride``-th frame of a video into ``out_video`` (at the video's frame rate
    divided by the stride, so it plays in real time) and write the detections and the gesture events
    they make; return the JSON content. ``stop``: called with the frames taken so far, a reason to end
    early (Ctrl+C) or None; the outputs then hold the frames up to there, and the JSON says why."""
    video = single_video(videos)
    return _predict_capture(detector, open_video(video, threads), video, video_id(video), out_video, csv_path,
                            json_path, events_csv=events_csv, events_json=events_json, event_settings=event_settings,
                            stride=stride, batch_size=batch_size, stop=stop)


def predict_stream(detector, url, out_video, csv_path, json_path, *, events_csv=None, events_json=None,
                   event_settings, stride, batch_size, stop=None, max_frames=None):
    """:func:`predict_video` on a stream URL, read until it ends or ``stop`` gives a reason (a bound, Ctrl+C);
    ``max_frames``, the bound ``stop`` applies if any, is the progress's total."""
    return _predict_capture(detector, open_stream(url), url, stream_id(url), out_video, csv_path, json_path,
                            events_csv=events_csv, events_json=events_json, event_settings=event_settings,
                            stride=stride, batch_size=batch_size, stop=stop, total=max_frames)


def _predict_capture(detector, capture, source, name, out_video, csv_path, json_path, *, events_csv, events_json,
                     event_settings, stride, batch_size, stop, total=None):
    """What predict_video and predict_stream share, from an opened capture of ``source`` (a path or URL)."""
    stream = not isinstance(source, Path)
    fps, declared = _frame_rate(capture, source), declared_frame_count(capture)
    clock = FrameClock(source, nominal_fps(capture) or (fps if stream else None))  # a stream is timed at any rate
    out_video = Path(out_video)
    out_video.parent.mkdir(parents=True, exist_ok=True)
    progress = {"decoded": 0}
    try:
        if declared:
            total = min(total or declared, -(-declared // stride))
        with Progress(f"{Path(source).name if not stream else name}: predicting", total, "frames") as meter:
            frames, rows, detected, size = _annotate_video(
                detector, _frames(capture, clock, stride, progress, stop), out_video, fps, stride, batch_size, meter)
        stopped = stop.reason if stop else None
        short = stopped_short(capture, clock, progress["decoded"]) if frames and not (stream or stopped) else None
    finally:
        capture.release()
    if not frames:
        out_video.unlink(missing_ok=True)
        raise InputError(source, f"{stopped} before the first frame" if stopped else
                         "the stream ended before its first frame" if stream else NO_FRAMES)
    if short is not None:
        log.warning("%s: %s (truncated or corrupt video); the %d frames before that are annotated", source, short,
                    progress["decoded"])
    counts = _detection_counts(detector, frames, rows, column=2)
    events = video_events(detected, event_settings)
    content = {
        "video": str(source), "video_id": name, "annotated_video": str(out_video),
        "width": size[0], "height": size[1], "fps": fps, "stride": stride, "annotated_fps": fps / stride,
        "frames_declared": declared, "frames_decoded": progress["decoded"], "frames_predicted": len(frames),
        "complete": short is None and stopped is None, "stopped": stopped,
        "score_threshold": detector.score_threshold, "classes": counts["classes"],
        "frames_with_detections": counts["with_detections"], "detections": counts["detections"],
        "event_settings": vars(event_settings), "events": event_counts(events, counts["classes"]),
        "frames": frames,
    }
    _write_csv(csv_path, VIDEO_COLUMNS, rows)
    _write_json(json_path, content)
    write_events(events, csv_path=events_csv, json_path=events_json,
                 about={"video": str(source), "video_id": name, "event_settings": vars(event_settings)})
    log.info("%s: %d of %d decoded frames predicted, %d with detections, detections per class %s, events per "
             "class %s%s", source, len(frames), progress["decoded"], content["frames_with_detections"],
             content["detections"], content["events"], f"; {stopped}" if stopped else "")
    return content


def _annotate_frame(writer, frame, detections, frame_index, timestamp):
    draw_detections(frame, detections)
    draw_frame_label(frame, frame_index, timestamp)
    writer.write(frame)


# ---------------------------------------------------------------- sources: files, folders, globs, streams


class Until:
    """When to end reading a source early: ``max_frames`` frames taken, ``max_seconds`` after the first,
    or a request of ``stopper`` (Ctrl+C). Called with the frames taken so far; ``reason`` says why
    reading ended early, None while it has not."""

    def __init__(self, *, max_frames=None, max_seconds=None, stopper=None):
        self.max_frames, self.max_seconds, self.stopper = max_frames, max_seconds, stopper
        self.started = self.reason = None

    def __call__(self, taken):
        if self.started is None:
            self.started = time.monotonic()
        if self.reason is None:
            self.reason = self._reached(taken)
        return self.reason

    def _reached(self, taken):
        if self.stopper is not None and self.stopper.reason:
            return self.stopper.reason
        if self.max_frames is not None and taken >= self.max_frames:
            return f"--max-frames {self.max_frames} reached"
        if self.max_seconds is not None and time.monotonic() - self.started >= self.max_seconds:
            return f"--max-seconds {self.max_seconds:g} reached"
        return None


def new_run_folder(parent):
    """The first free ``parent/run<n>`` (run1, run2, ...), created: every run by hand keeps its own outputs."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for number in itertools.count(1):
        try:
            (parent / f"run{number}").mkdir()
            return parent / f"run{number}"
        except FileExistsError:
            continue


def output_names(items):
    """{Item: the name of its outputs}: its safe name, numbered (``_2``, ``_3``, ...) where two videos or
    streams, or two images, would share one (also in another letter case), and where a video would be
    called as the images' detections files."""
    names, used = {}, {"image": set(), "video": {DETECTIONS}}
    for item in items:
        taken = used["image" if item.kind == "image" else "video"]
        name, number = item.name, 1
        while name.casefold() in taken:
            number += 1
            name = fitted(f"{item.name}_{number}", f"_{number}")
        taken.add(name.casefold())
        names[item] = name
    return names


def predict_sources(detector, items, out_dir, *, event_settings, stride, batch_size, threads=0, max_frames=None,
                    max_seconds=None, stopper=None):
    """Predict on every Item (:mod:`detflow.lib.data.sources`) into ``out_dir``: each video or stream as
    ``<name>.mp4``, ``.csv``, ``.json``, ``.events.csv`` and ``.events.json``; the images annotated in
    ``images/`` with one ``detections.csv`` and ``.json`` for them all. Yield a summary line for the images,
    then one per video or stream as each is done.

    A stream is read until it ends or ``max_frames``/``max_seconds``; once ``stopper`` is asked to stop
    (Ctrl+C), the source being read ends there with complete outputs and the rest are not read. A
    source that fails leaves none of its outputs behind."""
    out_dir, names = Path(out_dir), output_names(items)
    images = [(names[item], item.where) for item in items if item.kind == "image"]
    if images:
        yield _predict_image_files(detector, images, out_dir, batch_size=batch_size, stop=Until(stopper=stopper))
    for item in items:
        if item.kind == "image":
            continue
        if stopper is not None and stopper.reason:
            yield f"{item.where}: not read ({stopper.reason})"
            continue
        bounds = {"max_frames": max_frames, "max_seconds": max_seconds} if item.kind == "stream" else {}
        yield _predict_one(detector, item, out_dir / names[item], event_settings=event_settings, stride=stride,
                           batch_size=batch_size, threads=threads, stop=Until(stopper=stopper, **bounds))


def _predict_image_files(detector, images, out_dir, *, batch_size, stop):
    folder = out_dir / IMAGES
    files = [folder / f"{name}.jpg" for name, _ in images]
    files += [out_dir / f"{DETECTIONS}{ending}" for ending in (".csv", ".json")]
    with _removed_on_failure(files, folder):
        content = predict_images(detector, images, folder, files[-2], files[-1], batch_size=batch_size, stop=stop)
    unreadable = f", {len(content['unreadable'])} unreadable (skipped)" if content["unreadable"] else ""
    stopped = f"; {content['stopped']}" if content["stopped"] else ""
    return (f"images: {content['images_predicted']} of {len(images)} predicted{unreadable}, "
            f"{content['images_with_detections']} with detections; detections {_counted(content['detections'])}"
            f"{stopped} -> {IMAGES}/, {DETECTIONS}.csv, {DETECTIONS}.json")


def _predict_one(detector, item, base, *, event_settings, stride, batch_size, threads, stop):
    """A video or stream's predictions, written as ``base`` + each of OUTPUT_ENDINGS; its summary line."""
    files = [base.with_name(base.name + ending) for ending in OUTPUT_ENDINGS]
    options = dict(events_csv=files[3], events_json=files[4], event_settings=event_settings, stride=stride,
                   batch_size=batch_size, stop=stop)
    with _removed_on_failure(files):
        if item.kind == "stream":
            content = predict_stream(detector, item.where, *files[:3], max_frames=stop.max_frames, **options)
        else:
            content = predict_video(detector, [item.where], *files[:3], threads=threads, **options)
    line = (f"{item.where}: {content['frames_predicted']} frames predicted, {content['frames_with_detections']} with "
            f"detections; detections {_counted(content['detections'])}; events {_counted(content['events'])}")
    if item.kind == "stream":
        line += f"; ended: {content['stopped'] or 'end of the stream'}"
    elif content["stopped"] or not content["complete"]:
        line += f"; {content['stopped'] or 'the video ends early (truncated or corrupt)'}"
    return f"{line} -> {files[0].name}"


def _counted(counts):
    """{"grab": 3, "drop": 0} -> ``grab 3, drop 0``."""
    return ", ".join(f"{name} {count}" for name, count in counts.items())


@contextmanager
def _removed_on_failure(files, folder=None):
    """When the block fails, remove ``files`` (and their partial files), and ``folder`` if that empties it:
    a source that fails leaves nothing half-written behind."""
    try:
        yield
    except BaseException:
        for path in files:
            path.unlink(missing_ok=True)
            partial_path(path).unlink(missing_ok=True)
        if folder is not None and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        raise


# ---------------------------------------------------------------- command line


def _score(text):
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a score threshold lies between 0 and 1, not {text}")
    return value


def main(argv=None):
    """``predict images`` and ``predict video``, as the workflow's rules run them; anything else is SOURCE..."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["images"], ["video"]):
        _workflow_command(argv)
    else:
        _sources_command(argv)


def _workflow_command(argv):
    parser = argparse.ArgumentParser(prog=prog("predict"), description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    images = commands.add_parser("images", help="annotate the images of a dataset split")
    images.add_argument("model", help="the inference model (.h5); with --runtime tf|onnx|tflite, its export")
    images.add_argument("voc_dir", help="the VOC dataset (JPEGImages, ImageSets/Main)")
    images.add_argument("split", help="the split whose images to annotate: train, val or test")
    images.add_argument("--out-dir", required=True, help="folder for the annotated images")
    video = commands.add_parser("video", help="annotate a whole video")
    video.add_argument("model", help="the inference model (.h5); with --runtime tf|onnx|tflite, its export")
    video.add_argument("videos", nargs="+", help="the video file (two files mean a name clash and are refused)")
    video.add_argument("--out-video", required=True, help="the annotated video to write (.mp4)")
    video.add_argument("--video-stride", type=int, required=True, help="annotate every k-th frame")
    video.add_argument("--events-csv", help="gesture events CSV to write")
    video.add_argument("--events-json", help="gesture events JSON (with each event's boxes) to write")
    video.add_argument("--min-frames", type=int, required=True,
                       help="predicted frames a class must be seen on a track to make an event")
    video.add_argument("--max-gap", type=int, required=True, help="predicted frames without its class an event survives")
    video.add_argument("--track-iou", type=float, required=True, help="IoU that links a box to a track's last box")
    video.add_argument("--merge-iou", type=float, required=True,
                       help="IoU at which boxes of one frame are one hand (the best-scoring one is tracked)")
    for command in (images, video):
        command.add_argument("--csv", required=True, help="detections CSV to write")
        command.add_argument("--json", required=True, help="detections JSON to write")
        command.add_argument("--score-threshold", type=_score, required=True, help="lowest score kept")
        command.add_argument("--batch-size", type=int, required=True, help="images per inference batch")
        add_model_options(command, runtimes=RUNTIMES)
    args = parser.parse_args(argv)
    if args.batch_size < 1 or getattr(args, "video_stride", 1) < 1:
        parser.error("--batch-size and --video-stride must be at least 1")
    detector = load_detector(args.model, score_threshold=args.score_threshold, **model_options(args))
    if args.command == "images":
        predict_split(detector, args.voc_dir, args.split, args.out_dir, args.csv, args.json, batch_size=args.batch_size)
    else:
        predict_video(detector, args.videos, args.out_video, args.csv, args.json, events_csv=args.events_csv,
                      events_json=args.events_json,
                      event_settings=EventSettings(args.min_frames, args.max_gap, args.track_iou,
                                                   args.merge_iou),
                      stride=args.video_stride, batch_size=args.batch_size, threads=args.threads or 0)


def _sources_command(argv):
    parser = argparse.ArgumentParser(
        prog=prog("predict"), usage="%(prog)s SOURCE [SOURCE ...] [options]",
        description="The model on video files, images, folders, glob patterns and streams: annotated videos and "
                    "images, detections and gesture events in the next free results/predict/run<n> (or --out), "
                    "printed at the end. Defaults from config.yaml.",
        epilog="The workflow's rules run `%(prog)s images` (a dataset split) and `%(prog)s video` (one video, every "
               "option given); `%(prog)s images --help` and `%(prog)s video --help` show their options. A file "
               "called images or video is ./images.")
    parser.add_argument("sources", nargs="+", metavar="SOURCE",
                        help="video or image file (.jpg .jpeg .png .bmp), folder (its videos and images), glob "
                             "pattern ('clips/*.mp4'), or rtsp://, rtmp://, http(s):// stream URL")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"the inference model (default {DEFAULT_MODEL})")
    parser.add_argument("--out", help=f"folder for the outputs (default: the next free {RUNS}/run<n>)")
    parser.add_argument("--config", help="config.yaml that gives the defaults: the predict and events sections, and "
                                         "videos.extensions, the endings of videos (default: ./config.yaml, else the "
                                         "project's)")
    parser.add_argument("--score-threshold", type=_score, help="lowest score kept")
    parser.add_argument("--batch-size", type=int, help="images per inference batch")
    parser.add_argument("--video-stride", type=int, help="annotate every k-th frame of a video or stream")
    parser.add_argument("--min-frames", type=int,
                        help="predicted frames a class must be seen on a track to make an event")
    parser.add_argument("--max-gap", type=int, help="predicted frames without its class an event survives")
    parser.add_argument("--track-iou", type=float, help="IoU that links a box to a track's last box")
    parser.add_argument("--merge-iou", type=float,
                        help="IoU at which boxes of one frame are one hand (the best-scoring one is tracked)")
    parser.add_argument("--max-frames", type=int, help="a stream: stop after this many predicted frames")
    parser.add_argument("--max-seconds", type=float, help="a stream: stop after this many seconds")
    add_model_options(parser, runtimes=RUNTIMES)
    args = parser.parse_args(argv)
    config = project_config(args.config)
    fill_from_config(args, config, {
        "score_threshold": "predict.score_threshold", "batch_size": "predict.batch_size",
        "video_stride": "predict.video_stride", "min_frames": "events.min_frames", "max_gap": "events.max_gap",
        "track_iou": "events.track_iou", "merge_iou": "events.merge_iou"})
    if args.batch_size < 1 or args.video_stride < 1 or (args.max_frames is not None and args.max_frames < 1):
        parser.error("--batch-size, --video-stride and --max-frames must be at least 1")
    if args.max_seconds is not None and args.max_seconds <= 0:
        parser.error("--max-seconds must be more than 0")
    quiet_opencv()
    # Every source is checked before the model loads and anything is written: bad input is said at once.
    items = find_sources(args.sources, config["videos"]["extensions"])
    detector = load_detector(args.model, score_threshold=args.score_threshold, **model_options(args))
    settings = EventSettings(args.min_frames, args.max_gap, args.track_iou, args.merge_iou)
    out_dir, created = (Path(args.out), not Path(args.out).exists()) if args.out else (new_run_folder(RUNS), True)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines, stopper = [], Stopper()
    try:
        for line in predict_sources(detector, items, out_dir, event_settings=settings, stride=args.video_stride,
                                    batch_size=args.batch_size, threads=args.threads or 0, max_frames=args.max_frames,
                                    max_seconds=args.max_seconds, stopper=stopper):
            lines.append(line)
    finally:
        if created and not any(out_dir.iterdir()):
            out_dir.rmdir()
        if lines:
            print("\n".join([*lines, f"predict: outputs in {out_dir}"]), flush=True)


if __name__ == "__main__":
    run(main)

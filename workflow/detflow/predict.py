"""Prediction stage: the inference model on the images of dataset splits and on
whole videos, as annotated images and videos plus detections in CSV and JSON,
and for videos the gesture events the detections make (:mod:`detflow.lib.inference.events`).

The model and how it sees images come from the model itself
(:mod:`detflow.lib.inference.detector`, :mod:`detflow.lib.model.card`); boxes are
written in the original image's pixel coordinates (0-based, as
keras-retinanet's). Drawing and writing run in a background thread while the
model works on the next batch.

Bad input: a model whose description is missing, or whose classes differ from
the dataset's, is refused; an image that cannot be read is reported and
skipped, the others are done; a video that ends before the length its
container declares is annotated up to where it ends, and the JSON says so.
"""
import argparse
import csv
import json
import logging
import math
from collections import Counter
from pathlib import Path

import cv2

from detflow.lib.cli import InputError, add_model_options, model_options, prog, run
from detflow.lib.data.videos import (
    NO_FRAMES, FrameClock, declared_frame_count, nominal_fps, open_video, single_video, stopped_short, video_id,
)
from detflow.lib.data.voc_tree import VocTree
from detflow.lib.files import replacing, write_atomically
from detflow.lib.inference.background import BackgroundWriter
from detflow.lib.inference.detector import Unreadable, detect_images, detect_stream, load_detector
from detflow.lib.inference.drawing import draw_detections, draw_frame_label, write_jpeg
from detflow.lib.inference.events import EventSettings, event_counts, video_events, write_events
from detflow.lib.model.runtimes import RUNTIMES
from detflow.lib.progress import Progress

log = logging.getLogger(__name__)

IMAGE_COLUMNS = ("image", "class", "score", "x1", "y1", "x2", "y2")
VIDEO_COLUMNS = ("frame_index", "timestamp_s", "class", "score", "x1", "y1", "x2", "y2")
DEFAULT_FPS = 25.0  # for a video whose container gives no frame rate


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
    tree, out_dir = VocTree(voc_dir), Path(out_dir)
    image_ids = tree.split_image_ids(split)
    out_dir.mkdir(parents=True, exist_ok=True)
    images, unreadable, rows = [], [], []
    with BackgroundWriter() as writer, Progress(f"{split}: predicting", len(image_ids), "images") as meter:
        paths = ((image_id, tree.image(image_id)) for image_id in image_ids)
        for image_id, image, detections in detect_images(detector, paths, batch_size):
            meter.update()
            if isinstance(image, Unreadable):
                unreadable.append({"image": image_id, "file": image.file, "reason": image.reason})
                continue
            height, width = image.shape[:2]
            images.append({"image": image_id, "width": width, "height": height,
                           "detections": [detection.as_dict() for detection in detections]})
            rows.extend([image_id, *detection.as_row()] for detection in detections)
            # read_image_bgr's array is a channel-reversed view, which OpenCV cannot draw on.
            writer.submit(_annotate_and_write, out_dir / f"{image_id}.jpg", image.copy(), detections)
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


def _frames(capture, clock, stride, progress):
    """(frame index, timestamp in seconds, BGR frame) of every ``stride``-th decoded frame, timed as the
    frames stage times them (``clock``). ``progress["decoded"]`` counts decoded frames as they go."""
    index = -1
    while capture.grab():
        index += 1
        progress["decoded"] = index + 1
        timestamp = clock.time(index, capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0)
        if index % stride:
            continue
        ok, frame = capture.retrieve()
        if not ok:
            break
        yield (index, timestamp), frame


def _frame_rate(capture, video):
    fps = capture.get(cv2.CAP_PROP_FPS)
    if not (math.isfinite(fps) and fps > 0):
        log.warning("%s declares no frame rate; assuming %g frames/s", video, DEFAULT_FPS)
        fps = DEFAULT_FPS
    return fps


def _annotate_video(detector, capture, clock, out_video, fps, stride, batch_size, meter):
    """Detect in every ``stride``-th frame and write the annotated video; return (frames, CSV rows,
    (frame index, seconds, detections) of each frame, frames decoded, (width, height))."""
    frames, rows, detected, progress, writer, size = [], [], [], {"decoded": 0}, None, None
    try:
        with BackgroundWriter() as background:
            for (frame_index, timestamp), frame, detections in detect_stream(
                    detector, _frames(capture, clock, stride, progress), batch_size):
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
    return frames, rows, detected, progress["decoded"], size


def predict_video(detector, videos, out_video, csv_path, json_path, *, events_csv=None, events_json=None,
                  event_settings, stride, batch_size, threads=0):
    """Annotate every ``stride``-th frame of a video into ``out_video`` (at the video's frame rate
    divided by the stride, so it plays in real time) and write the detections and the gesture events
    they make; return the JSON content."""
    video = single_video(videos)
    capture = open_video(video, threads)
    fps, declared = _frame_rate(capture, video), declared_frame_count(capture)
    clock = FrameClock(video, nominal_fps(capture))
    out_video = Path(out_video)
    out_video.parent.mkdir(parents=True, exist_ok=True)
    try:
        total = -(-declared // stride) if declared else None
        with Progress(f"{video.name}: predicting", total, "frames") as meter:
            frames, rows, detected, decoded, size = _annotate_video(detector, capture, clock, out_video, fps, stride,
                                                                    batch_size, meter)
        short = stopped_short(capture, clock, decoded) if frames else None
    finally:
        capture.release()
    if not frames:
        out_video.unlink(missing_ok=True)
        raise InputError(video, NO_FRAMES)
    complete = short is None
    if not complete:
        log.warning("%s: %s (truncated or corrupt video); the %d frames before that are annotated", video, short,
                    decoded)
    counts = _detection_counts(detector, frames, rows, column=2)
    events = video_events(detected, event_settings)
    content = {
        "video": str(video), "video_id": video_id(video), "annotated_video": str(out_video),
        "width": size[0], "height": size[1], "fps": fps, "stride": stride, "annotated_fps": fps / stride,
        "frames_declared": declared, "frames_decoded": decoded, "frames_predicted": len(frames),
        "complete": complete, "score_threshold": detector.score_threshold, "classes": counts["classes"],
        "frames_with_detections": counts["with_detections"], "detections": counts["detections"],
        "event_settings": vars(event_settings), "events": event_counts(events, counts["classes"]),
        "frames": frames,
    }
    _write_csv(csv_path, VIDEO_COLUMNS, rows)
    _write_json(json_path, content)
    write_events(events, csv_path=events_csv, json_path=events_json,
                 about={"video": str(video), "video_id": video_id(video), "event_settings": vars(event_settings)})
    log.info("%s: %d of %d decoded frames predicted, %d with detections, detections per class %s, events per "
             "class %s", video, len(frames), decoded, content["frames_with_detections"], content["detections"],
             content["events"])
    return content


def _annotate_frame(writer, frame, detections, frame_index, timestamp):
    draw_detections(frame, detections)
    draw_frame_label(frame, frame_index, timestamp)
    writer.write(frame)


# ---------------------------------------------------------------- command line


def _score(text):
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a score threshold lies between 0 and 1, not {text}")
    return value


def main(argv=None):
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


if __name__ == "__main__":
    run(main)

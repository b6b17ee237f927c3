"""Prediction stage: the inference model on the images of dataset splits and on
whole videos, as annotated images and videos plus detections in CSV and JSON.

Preprocessing is keras-retinanet's, exactly as its examples use it: a BGR image
(``read_image_bgr`` for a file; a decoded video frame already is BGR), the
backbone's ``preprocess_image``, ``resize_image`` to the training image sizes,
the model, then the boxes divided by the resize scale. Boxes are written in the
original image's pixel coordinates (0-based, as keras-retinanet's).

Speed without changing a single detection: images are decoded and preprocessed
in a background thread while the model runs, images of the same size go
through the model in batches by one compiled function, and drawing and writing
run in another thread.

Bad input: a model file whose backbone, FPN/head width or classes differ from
the configuration is refused with the difference; an image that cannot be read
is reported and skipped, the others are done; a video that ends before the
length its container declares is annotated up to where it ends, and the JSON
says so.
"""
import argparse
import csv
import json
import logging
import math
import queue
import threading
import warnings
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detflow import retinanet_compat as compat
from detflow.cli import InputError, run
from detflow.frames import declared_frame_count, ended_early, open_video, single_video
from detflow.train import read_classes
from detflow.videos import video_id

import tensorflow as tf  # noqa: E402  (the compat module must come before TensorFlow)
from keras_retinanet import models  # noqa: E402
from keras_retinanet.utils.colors import label_color  # noqa: E402
from keras_retinanet.utils.image import read_image_bgr, resize_image  # noqa: E402

log = logging.getLogger(__name__)

IMAGE_COLUMNS = ("image", "class", "score", "x1", "y1", "x2", "y2")
VIDEO_COLUMNS = ("frame_index", "timestamp_s", "class", "score", "x1", "y1", "x2", "y2")
JPEG_QUALITY = 92
FONT = cv2.FONT_HERSHEY_SIMPLEX
DEFAULT_FPS = 25.0  # for a video whose container gives no frame rate
# A layer found only in one backbone family names the family of a foreign model.
BACKBONE_MARKERS = {"res2a_branch2a": "ResNet", "conv_dw_1": "MobileNet", "block1_conv1": "VGG",
                    "conv1/conv": "DenseNet"}


@dataclass(frozen=True)
class Detection:
    """One box in the original image's pixel coordinates (0-based, x1 y1 top left, x2 y2 bottom right)."""

    label: int
    name: str
    score: float
    box: tuple

    def as_dict(self):
        return {"class": self.name, "score": round(self.score, 4), "box": [round(value, 2) for value in self.box]}

    def as_row(self):
        return [self.name, f"{self.score:.4f}", *(f"{value:.2f}" for value in self.box)]


# ---------------------------------------------------------------- the model


def _weight_shapes(model):
    """{layer name: [weight shapes]} of every layer that has weights."""
    return {layer.name: [tuple(weight.shape) for weight in layer.weights] for layer in model.layers if layer.weights}


def _backbone_difference(model, backbone_name, num_classes, feature_size):
    """Why ``model`` is not a RetinaNet on ``backbone_name`` (None when it is one), found by
    comparing its layers with a freshly built model of that configuration."""
    with warnings.catch_warnings():  # Keras warns about reusing unseeded initialisers: these weights are never used
        warnings.simplefilter("ignore", UserWarning)
        expected = _weight_shapes(compat.build_retinanet(backbone_name, num_classes, feature_size))
    found = _weight_shapes(model)
    missing = [name for name in expected if name not in found]  # in the model's order: backbone first
    reshaped = [name for name in expected if name in found and expected[name] != found[name]]
    if not missing and not reshaped and len(found) == len(expected):
        return None
    family = next((family for marker, family in BACKBONE_MARKERS.items() if marker in found), None)
    details = []
    if missing:
        details.append(f"{len(missing)} of its layers are missing (e.g. {missing[0]})")
    if reshaped:
        details.append(f"{len(reshaped)} layers have other shapes (e.g. {reshaped[0]}: {found[reshaped[0]][0]} "
                       f"instead of {expected[reshaped[0]][0]})")
    if not details:
        details.append(f"it has {len(found)} layers with weights instead of {len(expected)}")
    guess = f"; its layers look like a {family} backbone" if family else ""
    return f"{', '.join(details)}{guess}"


def load_inference_model(path, backbone_name, feature_size, num_classes):
    """The converted (inference) model at ``path``, checked against the configuration:
    backbone, FPN/head width and number of classes. InputError names any difference."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise InputError(path, "model file not found or empty (the convert stage writes it)")
    try:
        model = models.load_model(str(path), backbone_name=backbone_name)
    except Exception as error:  # h5py, Keras deserialisation and custom objects fail in many ways; all mean one thing
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if len(reason) > 160:
            reason = reason[:160] + " ..."
        raise InputError(path, f"cannot be loaded as a keras-retinanet model on backbone {backbone_name} ({reason}); "
                               "is it a model file, and one trained with this backbone (train.backbone)?")
    if {"regression", "classification"} <= set(model.output_names):
        raise InputError(path, "is a training model (outputs regression and classification), not an inference "
                               "model: convert it first (the convert stage, keras-retinanet's convert_model)")
    if len(model.outputs) < 3:
        raise InputError(path, f"is not a keras-retinanet inference model (outputs {', '.join(model.output_names)})")
    try:
        width = compat.feature_size_of(model)
        classes_out = int(model.get_layer("classification").output.shape[-1])
    except ValueError as error:  # no layer P3 or classification
        raise InputError(path, f"is not a keras-retinanet RetinaNet ({error})")
    if width != feature_size:
        raise InputError(path, f"its FPN and heads are {width} channels wide, but the configuration says {feature_size} "
                               "(train.feature_size): the model comes from another configuration")
    if classes_out != num_classes:
        raise InputError(path, f"predicts {classes_out} classes, but the dataset has {num_classes}: "
                               "the model was trained on other classes")
    difference = _backbone_difference(model, backbone_name, num_classes, feature_size)
    if difference:
        raise InputError(path, f"is not a RetinaNet on backbone {backbone_name} (train.backbone): {difference}")
    log.info("model %s: %s backbone, FPN and heads %d wide, %d classes", path, backbone_name, width, num_classes)
    return model


class Detector:
    """The inference model with keras-retinanet's preprocessing, for batches of BGR images."""

    def __init__(self, model, backbone_name, classes, *, image_min_side, image_max_side, score_threshold):
        self.preprocess_image = compat.backbone(backbone_name).preprocess_image
        self.names = {label: name for name, label in classes.items()}
        self.image_min_side, self.image_max_side = image_min_side, image_max_side
        self.score_threshold = score_threshold
        # One traced graph per input shape, called without predict_on_batch's per-call overhead.
        self._predict = tf.function(lambda batch: model(batch, training=False), reduce_retracing=True)

    def prepare(self, image):
        """keras-retinanet's preprocessing of a BGR image: (network input, scale)."""
        return resize_image(self.preprocess_image(image), min_side=self.image_min_side, max_side=self.image_max_side)

    def detect(self, inputs, scales):
        """Detections (score >= threshold, best first) of prepared inputs of one shape, one list per input."""
        boxes, scores, labels = (output.numpy() for output in self._predict(tf.constant(np.stack(inputs)))[:3])
        results = []
        for index, scale in enumerate(scales):
            keep = np.flatnonzero(scores[index] >= self.score_threshold)  # padding entries score -1
            keep = keep[np.argsort(-scores[index][keep], kind="stable")]
            results.append([
                Detection(int(labels[index, k]), self.names[int(labels[index, k])], float(scores[index, k]),
                          tuple(float(value) for value in boxes[index, k] / scale))
                for k in keep
            ])
        return results


def model_from_options(args):
    """The classes and the checked model that add_model_options's options name, with the device set up
    first (TensorFlow's threads and GPU memory growth must be set before the model exists)."""
    classes = read_classes(args.classes)
    compat.setup_device(args.threads)
    return classes, load_inference_model(args.model, args.backbone, args.feature_size, len(classes))


def detector_from_options(args):
    """The model that add_model_options's options name, wrapped in a Detector."""
    classes, model = model_from_options(args)
    return Detector(model, args.backbone, classes, image_min_side=args.image_min_side,
                    image_max_side=args.image_max_side, score_threshold=args.score_threshold)


# ---------------------------------------------------------------- the pipeline


_END = object()


def _in_background(items, depth):
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead of the consumer.
    An exception in the thread is raised in the consumer."""
    buffer = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over(entry):
        """Put ``entry`` in the buffer unless the consumer has stopped; whether it went in."""
        while not stop.is_set():
            try:
                buffer.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in items:
                if not hand_over((item, None)):
                    return
            hand_over((_END, None))
        except BaseException as error:  # handed to the consumer, who raises it
            hand_over((_END, error))

    thread = threading.Thread(target=produce, name="decode", daemon=True)
    thread.start()
    try:
        while True:
            item, error = buffer.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        thread.join()


def detect_stream(detector, items, batch_size):
    """Yield ``(key, image, detections)`` for each ``(key, image)`` of ``items``, in order.

    ``image`` is a BGR array; anything else (e.g. the reason an image could
    not be read) passes through with detections None. Items are produced and
    preprocessed in a background thread; consecutive images of one network
    input shape are predicted as one batch.
    """
    def prepared():
        for key, image in items:
            yield (key, image, *(detector.prepare(image) if isinstance(image, np.ndarray) else (None, None)))

    batch = []

    def flush():
        results = detector.detect([entry[2] for entry in batch], [entry[3] for entry in batch])
        done = [(key, image, detections) for (key, image, _, _), detections in zip(batch, results)]
        batch.clear()
        return done

    for key, image, network_input, scale in _in_background(prepared(), depth=2 * batch_size):
        if batch and (network_input is None or network_input.shape != batch[0][2].shape):
            yield from flush()
        if network_input is None:
            yield key, image, None
            continue
        batch.append((key, image, network_input, scale))
        if len(batch) == batch_size:
            yield from flush()
    if batch:
        yield from flush()


class BackgroundWriter:
    """Runs drawing and writing in one background thread, in order, with few images in flight."""

    def __init__(self, in_flight=8):
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="write")
        self.pending = deque()
        self.in_flight = in_flight

    def submit(self, function, *args):
        self.pending.append(self.pool.submit(function, *args))
        while len(self.pending) > self.in_flight:
            self.pending.popleft().result()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        try:
            while self.pending:
                self.pending.popleft().result()
        finally:
            self.pool.shutdown(cancel_futures=True)


# ---------------------------------------------------------------- drawing


def _text_colour(colour):
    """Black or white, whichever reads better on ``colour`` (BGR)."""
    blue, green, red = colour
    return (0, 0, 0) if 0.114 * blue + 0.587 * green + 0.299 * red > 140 else (255, 255, 255)


def _label(image, text, origin, colour, scale, thickness):
    """``text`` on a filled box of ``colour`` whose top left is near ``origin``, kept inside the image."""
    (width, height), baseline = cv2.getTextSize(text, FONT, scale, thickness)
    pad = max(1, round(2 * scale))
    box_width, box_height = width + 2 * pad, height + baseline + 2 * pad
    left = int(min(max(origin[0], 0), max(image.shape[1] - box_width, 0)))
    top = int(min(max(origin[1], 0), max(image.shape[0] - box_height, 0)))
    cv2.rectangle(image, (left, top), (left + box_width, top + box_height), colour, -1)
    cv2.putText(image, text, (left + pad, top + pad + height), FONT, scale, _text_colour(colour), thickness, cv2.LINE_AA)


def draw_detections(image, detections):
    """Draw each detection on ``image`` (BGR, in place): a box in its class's colour and a caption
    "class score" above it (inside the box where there is no room above); the best is drawn last."""
    height, width = image.shape[:2]
    side = min(height, width)
    thickness = max(1, round(side / 240))
    scale, text_thickness = max(0.4, side / 700), max(1, round(side / 500))
    for detection in sorted(detections, key=lambda item: item.score):
        colour = tuple(int(value) for value in label_color(detection.label))
        x1, y1, x2, y2 = (int(round(value)) for value in detection.box)
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, thickness)
        caption = f"{detection.name} {detection.score:.2f}"
        (_, text_height), baseline = cv2.getTextSize(caption, FONT, scale, text_thickness)
        caption_height = text_height + baseline + 2 * max(1, round(2 * scale))
        top = y1 - caption_height if y1 - caption_height >= 0 else y1 + thickness
        _label(image, caption, (x1 - thickness // 2, top), colour, scale, text_thickness)
    return image


def draw_frame_label(image, frame_index, timestamp):
    """The frame index and time in the top left corner, to find a frame in the CSV."""
    side = min(image.shape[:2])
    _label(image, f"frame {frame_index}  {timestamp:.2f} s", (0, 0), (32, 32, 32), max(0.35, side / 1100),
           max(1, round(side / 600)))


def _write_jpeg(path, image):
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
        raise OSError(f"{path}: the annotated image could not be written")


# ---------------------------------------------------------------- outputs


def per_class(detections_lists, names):
    """Detections per class name over lists of detections (every class listed, zero included)."""
    counts = Counter(detection.name for detections in detections_lists for detection in detections)
    return {name: counts[name] for name in names}


def _write_csv(path, columns, rows):
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(columns)
        writer.writerows(rows)


def _write_json(path, content):
    Path(path).write_text(json.dumps(content, indent=1, ensure_ascii=False) + "\n")


def split_image_ids(voc_dir, split):
    """Image ids listed in ImageSets/Main/<split>.txt."""
    path = Path(voc_dir) / "ImageSets" / "Main" / f"{split}.txt"
    if not path.is_file():
        raise InputError(path, f"is missing: the splits stage writes the {split} list")
    return path.read_text().split()


@dataclass(frozen=True)
class Unreadable:
    """An image file that could not be read, and why."""

    file: str
    reason: str


def read_images(paths):
    """(key, BGR image, or Unreadable) for each (key, path), read as keras-retinanet reads images."""
    for key, path in paths:
        try:
            yield key, read_image_bgr(path)
        except (OSError, ValueError, SyntaxError) as error:  # PIL: missing, truncated or not an image
            log.warning("skipped %s: cannot be read (%s)", path, error)
            yield key, Unreadable(str(path), str(error) or type(error).__name__)


def detect_images(detector, paths, batch_size):
    """Yield ``(key, image, detections)`` for each ``(key, path)``; an image that cannot be read
    comes as an Unreadable with detections None."""
    return detect_stream(detector, read_images(paths), batch_size)


def predict_split(detector, voc_dir, split, out_dir, csv_path, json_path, *, batch_size=8):
    """Annotate the images of a dataset split and write their detections; return the JSON content.

    An image that cannot be read is listed under ``unreadable`` and skipped;
    InputError when no image of a non-empty split can be read.
    """
    voc_dir, out_dir = Path(voc_dir), Path(out_dir)
    image_ids = split_image_ids(voc_dir, split)
    out_dir.mkdir(parents=True, exist_ok=True)
    images, unreadable, rows = [], [], []
    paths = ((image_id, voc_dir / "JPEGImages" / f"{image_id}.jpg") for image_id in image_ids)
    with BackgroundWriter() as writer:
        for image_id, image, detections in detect_images(detector, paths, batch_size):
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
        raise InputError(voc_dir / "JPEGImages", f"none of the {len(image_ids)} images of the {split} split can be "
                                                 f"read, e.g. {unreadable[0]['file']}: {unreadable[0]['reason']}")
    names = list(detector.names.values())
    counts = Counter(row[1] for row in rows)
    content = {
        "split": split,
        "score_threshold": detector.score_threshold,
        "classes": names,
        "images_listed": len(image_ids),
        "images_predicted": len(images),
        "images_with_detections": sum(1 for image in images if image["detections"]),
        "detections": {name: counts[name] for name in names},
        "unreadable": unreadable,
        "images": images,
    }
    _write_csv(csv_path, IMAGE_COLUMNS, rows)
    _write_json(json_path, content)
    if not image_ids:
        log.warning("the %s split lists no images: nothing to predict", split)
    log.info("%s: %d of %d images predicted, %d with detections, detections per class %s%s", split, len(images),
             len(image_ids), content["images_with_detections"], content["detections"],
             f"; {len(unreadable)} unreadable" if unreadable else "")
    return content


def _annotate_and_write(path, image, detections):
    _write_jpeg(path, draw_detections(image, detections))


# ---------------------------------------------------------------- videos


def _frames(capture, stride, progress):
    """(frame index, timestamp in seconds, BGR frame) of every ``stride``-th decoded frame.
    ``progress["decoded"]`` counts decoded frames as they go."""
    index = -1
    while capture.grab():
        index += 1
        progress["decoded"] = index + 1
        if index % stride:
            continue
        timestamp = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        ok, frame = capture.retrieve()
        if not ok:
            break
        yield (index, timestamp), frame


def predict_video(detector, videos, out_video, csv_path, json_path, *, stride=1, batch_size=8, threads=0):
    """Annotate every ``stride``-th frame of a video into ``out_video`` (at the video's frame rate
    divided by the stride, so it plays in real time) and write the detections; return the JSON content."""
    video = single_video(videos)
    capture = open_video(video, threads)
    fps = capture.get(cv2.CAP_PROP_FPS)
    if not (math.isfinite(fps) and fps > 0):
        log.warning("%s declares no frame rate; assuming %g frames/s", video, DEFAULT_FPS)
        fps = DEFAULT_FPS
    declared = declared_frame_count(capture)
    out_video = Path(out_video)
    out_video.parent.mkdir(parents=True, exist_ok=True)
    frames, rows, progress, writer = [], [], {"decoded": 0}, None
    try:
        with BackgroundWriter() as background:
            stream = detect_stream(detector, _frames(capture, stride, progress), batch_size)
            for (frame_index, timestamp), frame, detections in stream:
                if writer is None:
                    height, width = frame.shape[:2]
                    writer = cv2.VideoWriter(str(out_video), cv2.VideoWriter_fourcc(*"mp4v"), fps / stride,
                                             (width, height))
                    if not writer.isOpened():
                        raise InputError(out_video, "cannot be written by OpenCV's VideoWriter (MPEG-4)")
                frames.append({"frame_index": frame_index, "timestamp_s": round(timestamp, 3),
                               "detections": [detection.as_dict() for detection in detections]})
                rows.extend([frame_index, f"{timestamp:.3f}", *detection.as_row()] for detection in detections)
                background.submit(_annotate_frame, writer, frame, detections, frame_index, timestamp)
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    decoded = progress["decoded"]
    if not frames:
        out_video.unlink(missing_ok=True)
        raise InputError(video, "no frame could be decoded (a zero-frame, corrupt or truncated video)")
    complete = not ended_early(declared, decoded)
    if not complete:
        log.warning("%s: decoding stopped at frame %d of the %d the file declares (truncated or corrupt video); "
                    "the %d frames before that are annotated", video, decoded, declared, decoded)
    names = list(detector.names.values())
    counts = Counter(row[2] for row in rows)
    content = {
        "video": str(video),
        "video_id": video_id(video),
        "annotated_video": str(out_video),
        "width": width,
        "height": height,
        "fps": fps,
        "stride": stride,
        "annotated_fps": fps / stride,
        "frames_declared": declared,
        "frames_decoded": decoded,
        "frames_predicted": len(frames),
        "complete": complete,
        "score_threshold": detector.score_threshold,
        "classes": names,
        "frames_with_detections": sum(1 for frame in frames if frame["detections"]),
        "detections": {name: counts[name] for name in names},
        "frames": frames,
    }
    _write_csv(csv_path, VIDEO_COLUMNS, rows)
    _write_json(json_path, content)
    log.info("%s: %d of %d decoded frames predicted, %d with detections, detections per class %s",
             video, len(frames), decoded, content["frames_with_detections"], content["detections"])
    return content


def _annotate_frame(writer, frame, detections, frame_index, timestamp):
    draw_detections(frame, detections)
    draw_frame_label(frame, frame_index, timestamp)
    writer.write(frame)


# ---------------------------------------------------------------- command line


def add_model_options(parser):
    """The options that describe the model and how it sees images (shared with evaluate and prelabel)."""
    parser.add_argument("--classes", required=True, help="classes.json of the dataset ({name: label})")
    parser.add_argument("--backbone", required=True, help="the model's keras-retinanet backbone, e.g. mobilenet224_1.0")
    parser.add_argument("--feature-size", type=int, default=compat.LIBRARY_FEATURE_SIZE, help="FPN and head width")
    parser.add_argument("--image-min-side", type=int, default=800, help="images are resized to this shorter side ...")
    parser.add_argument("--image-max-side", type=int, default=1333, help="... and at most this longer side")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for TensorFlow (default: all)")


def _score(text):
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a score threshold lies between 0 and 1, not {text}")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m detflow.predict", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    images = commands.add_parser("images", help="annotate the images of a dataset split")
    images.add_argument("model", help="the inference model (.h5)")
    images.add_argument("voc_dir", help="the VOC dataset (JPEGImages, ImageSets/Main)")
    images.add_argument("split", help="the split whose images to annotate: train, val or test")
    images.add_argument("--out-dir", required=True, help="folder for the annotated images")
    video = commands.add_parser("video", help="annotate a whole video")
    video.add_argument("model", help="the inference model (.h5)")
    video.add_argument("videos", nargs="+", help="the video file (two files mean a name clash and are refused)")
    video.add_argument("--out-video", required=True, help="the annotated video to write (.mp4)")
    video.add_argument("--video-stride", type=int, default=1, help="annotate every k-th frame")
    for command in (images, video):
        command.add_argument("--csv", required=True, help="detections CSV to write")
        command.add_argument("--json", required=True, help="detections JSON to write")
        command.add_argument("--score-threshold", type=_score, default=0.5, help="lowest score kept")
        command.add_argument("--batch-size", type=int, default=8, help="images per inference batch")
        add_model_options(command)
    args = parser.parse_args(argv)
    if args.batch_size < 1 or getattr(args, "video_stride", 1) < 1:
        parser.error("--batch-size and --video-stride must be at least 1")
    detector = detector_from_options(args)
    if args.command == "images":
        predict_split(detector, args.voc_dir, args.split, args.out_dir, args.csv, args.json, batch_size=args.batch_size)
    else:
        predict_video(detector, args.videos, args.out_video, args.csv, args.json, stride=args.video_stride,
                      batch_size=args.batch_size, threads=args.threads or 0)


if __name__ == "__main__":
    run(main)

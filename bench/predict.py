"""Benchmark: video prediction (``detflow.predict.predict_video``) against the
tutorial's pattern, with the same model, image size and video, in one run.

The tutorial's pattern, one frame at a time: read a frame, ``preprocess_image``,
``resize_image``, ``model.predict_on_batch``, boxes divided by the scale, then
(as ours does) draw the boxes and write the annotated frame. Ours decodes and
preprocesses in a background thread, predicts batches of ``--batch-size``
frames through a compiled function, and draws and writes in another thread.
Both annotate every frame of the video; the bench prints frames/s of each,
the ratio, and the largest differences between their detections
(:mod:`detflow.lib.metrics.detection_match`: batched and one-at-a-time inference round
differently), and fails when those exceed its stated tolerances. Each timing is the best of
``--repeats`` runs after one warm-up run each, the two taking turns. Target: ratio >= 2.

The model is the workflow's (``results/model/inference.h5``, which describes
itself): run the workflow first, e.g.
``.venv/bin/snakemake --cores 2 results/model/inference.h5``. The video is a
demo video generated for the bench (``--seconds``, the demo's size) unless
``--video`` names one.

    .venv/bin/python bench/predict.py [--video clip.mp4] [--batch-size 8] [--threads 2]
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from keras_retinanet.utils.image import resize_image

from detflow import predict
from detflow.demo import generate_video
from detflow.lib.inference.detector import Detection, Detector, load_inference_model
from detflow.lib.inference.drawing import draw_detections
from detflow.lib.inference.events import EventSettings
from detflow.lib.metrics.detection_match import compare
from detflow.lib.model import retinanet
from detflow.lib.model.card import read_card
from detflow.lib.model.device import setup_device
from machine import MODEL, project_config, require_model


def tutorial(model, video, out_video, preprocess_image, classes, *, image_min_side, image_max_side, score_threshold):
    """The tutorial's loop; returns the detections of every frame, as predict_video's JSON lists them."""
    names = {label: name for name, label in classes.items()}
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS)
    writer, frames = None, []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        image = preprocess_image(frame)
        image, scale = resize_image(image, min_side=image_min_side, max_side=image_max_side)
        boxes, scores, labels = model.predict_on_batch(np.expand_dims(image, axis=0))[:3]
        boxes /= scale
        detections = [Detection(int(label), names[int(label)], float(score), tuple(float(v) for v in box))
                      for box, score, label in zip(boxes[0], scores[0], labels[0]) if score >= score_threshold]
        draw_detections(frame, detections)
        if writer is None:
            writer = cv2.VideoWriter(str(out_video), cv2.VideoWriter_fourcc(*"mp4v"), fps, frame.shape[1::-1])
        writer.write(frame)
        frames.append([detection.as_dict() for detection in detections])
    writer.release()
    return frames


def best_times(contenders, repeats):
    """Best time and last result of each function; one warm-up run each (graph tracing, caches), then
    the contenders take turns, so that a busy machine slows them alike."""
    results = [function() for function in contenders]
    best = [float("inf")] * len(contenders)
    for _ in range(repeats):
        for index, function in enumerate(contenders):
            started = time.perf_counter()
            results[index] = function()
            best[index] = min(best[index], time.perf_counter() - started)
    return best, results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=MODEL, type=Path)
    parser.add_argument("--video", type=Path, help="video to annotate (default: a generated demo video)")
    parser.add_argument("--seconds", type=float, default=20, help="length of the generated video")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--score-threshold", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for TensorFlow")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    require_model(args.model)
    config = project_config()
    events = EventSettings.from_config(config["events"])  # the gesture events predict_video also finds
    card = read_card(args.model)
    classes = card.class_map
    device = setup_device(args.threads)
    model = load_inference_model(args.model, card)
    detector = Detector(model, card, score_threshold=args.score_threshold)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        video = args.video
        if video is None:
            demo = config["demo"]
            video = folder / "bench.mp4"
            generate_video(video, folder / "truth.csv", index=0, seed=demo["seed"], seconds=args.seconds,
                           fps=demo["fps"], width=demo["width"], height=demo["height"], classes=list(classes))
        frames = int(cv2.VideoCapture(str(video)).get(cv2.CAP_PROP_FRAME_COUNT))
        (theirs_seconds, ours_seconds), (theirs, ours) = best_times([
            lambda: tutorial(model, video, folder / "tutorial.mp4", retinanet.backbone(card.backbone).preprocess_image,
                             classes, image_min_side=card.image_min_side, image_max_side=card.image_max_side,
                             score_threshold=args.score_threshold),
            lambda: predict.predict_video(detector, [video], folder / "ours.mp4", folder / "ours.csv",
                                          folder / "ours.json", event_settings=events, stride=1,
                                          batch_size=args.batch_size, threads=args.threads),
        ], args.repeats)
    ours_frames = [frame["detections"] for frame in ours["frames"]]
    found = sum(len(frame) for frame in ours_frames)
    print(f"model: {card.backbone} RetinaNet, FPN/heads {card.feature_size} wide, images "
          f"{card.image_min_side}-{card.image_max_side} px; {device}")
    print(f"video: {video.name if args.video else 'generated demo video'}, {frames} frames "
          f"{ours['width']}x{ours['height']}; {found} detections scoring {args.score_threshold:g}+")
    print(f"{'':<42}{'seconds':>9}{'frames/s':>10}")
    print(f"{'tutorial pattern (one frame at a time)':<42}{theirs_seconds:>9.2f}{frames / theirs_seconds:>10.1f}")
    print(f"{f'detflow.predict (batch {args.batch_size}, pipelined)':<42}{ours_seconds:>9.2f}"
          f"{frames / ours_seconds:>10.1f}")
    print(f"ratio (tutorial time / ours): {theirs_seconds / ours_seconds:.2f}x (target >= 2)")
    differences = compare(theirs, ours_frames, args.score_threshold)
    print(f"same detections: {differences}")
    if not differences.within_tolerance:
        sys.exit(1)


if __name__ == "__main__":
    main()

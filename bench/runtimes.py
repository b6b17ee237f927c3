"""Benchmark: the same model on the same demo video on each runtime (the Keras model through our
Detector, and its exports on TensorFlow's SavedModel, onnxruntime and TFLite), at batch 1 (live
use) and at the predict stage's batch size, with the largest differences between their detections.

Each contender runs the predict stage's pipeline (``detect_stream``) over the video's frames,
decoded into memory once so that decoding is not measured. Preprocessing (resize and the
backbone's normalisation) is part of every contender's measured time: the exports do it
inside their own graph, together with the non-maximum suppression, and take one frame at a
time (a batch's frames go through one by one); the Keras model gets keras-retinanet's
preprocessing from the pipeline's background thread, within the same timed run. The contenders take
turns, ``--repeats`` times after one warm-up run each; the figures are medians of
wall time (frames/s) and of the process's CPU time (CPU ms per frame, which a
shared machine disturbs less), and ratios against the Keras model at the same
batch size, measured in the same run. Detections are compared with the Keras
model's at batch 1 as :mod:`detflow.lib.metrics.detection_match` defines "the same". The quantised
models (``onnx_int8`` and ``tflite_int8``, their convolutions in int8, calibrated on the dataset's training
images) are compared by accuracy instead: the test split's mAP@0.5 and mAP@[.5:.95] (pycocotools, as the
evaluation stage computes its COCO metrics) of the Keras model and of each quantised model and its float
file, printed with the differences.
Targets: the fastest runtime at least 3.2x the Keras model at batch 1, with the same detections or, for
a quantised model, test mAPs within 0.01 of its float model's.

The model is the trained one: ``--model``, or the workflow's own ``results/model/inference.h5``
(run the workflow first: ``.venv/bin/snakemake --cores all``).

    .venv/bin/python bench/runtimes.py [--model inference.h5] [--threads 2] [--seconds 8] [--repeats 3]
"""
import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from detflow.demo import generate_video
from detflow.export import export
from detflow.lib.data.pascal_voc import read_annotation
from detflow.lib.data.voc_tree import VocTree
from detflow.lib.inference.detector import Detector, detect_stream, load_inference_model
from detflow.lib.metrics.coco import coco_metrics
from detflow.lib.metrics.detection_match import compare
from detflow.lib.model.card import read_card
from detflow.lib.model.device import setup_device
from detflow.lib.model.runtimes import FORMAT_FILES, FORMATS, load_exported
from machine import MODEL, VOC, cpu_model, project_config, require_model

TARGET = 3.2
ACCURACY_TOLERANCE = 0.01  # test mAP an int8 model may lose against the float one
QUANTISED = {"onnx_int8": "onnx", "tflite_int8": "tflite"}  # quantised format -> its float format


def demo_frames(folder, config, seconds, classes):
    """The frames of a demo video generated as the demo stage does, decoded once."""
    demo = config["demo"]
    video = folder / "bench.mp4"
    generate_video(video, folder / "truth.csv", index=0, seed=demo["seed"], seconds=seconds, fps=demo["fps"],
                   width=demo["width"], height=demo["height"], classes=classes)
    capture, frames = cv2.VideoCapture(str(video)), []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def test_accuracy(detectors, classes, config):
    """{name: (mAP@0.5, mAP@[.5:.95])} of each detector on the test split of the demo's dataset, scored by
    pycocotools with the evaluation stage's score floor and most detections per image."""
    tree = VocTree(VOC)
    ids = tree.split_image_ids("test")
    annotations = []
    for image_id in ids:
        objects = read_annotation(tree.annotation(image_id)).objects
        annotations.append([np.array([[value - 1 for value in item.box] for item in objects if item.name == name],
                                     float).reshape(-1, 4) for name in classes])  # VOC counts pixels from 1
    scores = {}
    for name, detector in detectors.items():
        found = []
        for _, _, detections in detect_stream(detector, ((i, cv2.imread(str(tree.image(i)))) for i in ids), 1):
            found.append([np.array([[*item.box, item.score] for item in detections if item.label == label],
                                   float).reshape(-1, 5) for label in range(len(classes))])
        overall = coco_metrics(annotations, found, classes, config["evaluate"]["max_detections"])["overall"]
        scores[name] = (overall["AP50"], overall["mAP_50_95"])
    return scores


def timed(function):
    """(wall seconds, CPU seconds of this process, result) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=MODEL,
                        help="inference model (.h5); default: the workflow's results/model/inference.h5")
    parser.add_argument("--seconds", type=float, default=8, help="length of the generated demo video")
    parser.add_argument("--batch-size", type=int, help="default: config.yaml's predict batch size")
    parser.add_argument("--score-threshold", type=float, help="default: config.yaml's predict score threshold")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of every runtime")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model_path = args.model
    require_model(model_path)
    config = project_config()
    batch_size = args.batch_size or config["predict"]["batch_size"]
    threshold = config["predict"]["score_threshold"] if args.score_threshold is None else args.score_threshold
    device = setup_device(args.threads)  # before TensorFlow's first tensor
    card = read_card(model_path)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        frames = demo_frames(folder, config, args.seconds, list(card.classes))
        export(model_path, folder / "export", list(FORMATS), opset=config["export"]["opset"], calibration_voc=VOC)
        models = {"keras": load_inference_model(model_path, card)}
        models.update((name, load_exported(folder / "export" / FORMAT_FILES[name], runtime, args.threads))
                      for name, runtime in FORMATS.items())
        contenders = {(name, size): Detector(model, card, score_threshold=threshold)
                      for name, model in models.items() for size in (1, batch_size)}
        floor = config["evaluate"]["score_threshold"]
        accuracy = test_accuracy({name: Detector(models[name], card, score_threshold=floor)
                                  for name in ("keras", *QUANTISED.values(), *QUANTISED)}, list(card.classes),
                                 config)

        def run(key):
            return [found for _, _, found in detect_stream(contenders[key], enumerate(frames), key[1])]

        found = {key: run(key) for key in contenders}  # warm-up: graphs traced, sessions and caches ready
        walls, cpus = {key: [] for key in contenders}, {key: [] for key in contenders}
        for _ in range(args.repeats):
            for key in contenders:
                wall, cpu, found[key] = timed(lambda: run(key))
                walls[key].append(wall)
                cpus[key].append(cpu)
    load = os.getloadavg()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} "
          f"(other work on the machine slows wall time; CPU time is this process's)")
    print(f"model: {model_path.name} "
          f"{card.backbone} RetinaNet, FPN/heads {card.feature_size} wide, images {card.image_min_side}-"
          f"{card.image_max_side} px; {device}; {args.threads} threads each")
    print(f"video: generated demo video, {len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]}; "
          f"score threshold {threshold:g}; medians of {args.repeats} runs, contenders taking turns")
    print(f"{'runtime':<9}{'batch':>6}{'frames/s':>10}{'x Keras':>9}{'CPU ms/frame':>14}{'x Keras':>9}  "
          "largest differences from Keras at batch 1")
    fastest = {}
    for key in contenders:
        runtime, size = key
        fps = len(frames) / statistics.median(walls[key])
        cpu_ms = 1000 * statistics.median(cpus[key]) / len(frames)
        keras_fps = len(frames) / statistics.median(walls[("keras", size)])
        keras_cpu = 1000 * statistics.median(cpus[("keras", size)]) / len(frames)
        differences = compare(found[("keras", 1)], found[key], threshold)
        print(f"{runtime:<9}{size:>6}{fps:>10.1f}{fps / keras_fps:>9.2f}{cpu_ms:>14.1f}{keras_cpu / cpu_ms:>9.2f}  "
              f"{differences}")
        if size == 1 and runtime != "keras":
            fastest[runtime] = fps / keras_fps
    best = max(fastest, key=fastest.get)
    print(f"fastest at batch 1: {best}, {fastest[best]:.2f}x the Keras model's frames/s (target >= {TARGET:g}x)")
    print(f"test split ({len(VocTree(VOC).split_image_ids('test'))} images, pycocotools): "
          + "; ".join(f"{name} mAP@0.5 {at50:.4f}, mAP@[.5:.95] {strict:.4f}" for name, (at50, strict) in
                      accuracy.items()))
    for quantised, float_format in QUANTISED.items():
        lost = [accuracy[float_format][index] - accuracy[quantised][index] for index in (0, 1)]
        print(f"{quantised} against {float_format}: mAP@0.5 {-lost[0]:+.4f}, mAP@[.5:.95] {-lost[1]:+.4f} "
              f"({'within' if max(lost) <= ACCURACY_TOLERANCE else 'NOT within'} {ACCURACY_TOLERANCE})")


if __name__ == "__main__":
    main()

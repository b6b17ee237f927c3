"""Benchmark: live detection (``detflow.live``) on a demo video, against the
detector alone on the same frames, in one run.

The detector alone: decode a frame, ``Detector.prepare``, ``Detector.detect``
at batch 1, next frame; nothing drawn, tracked or written. Live: the reader
thread, detection at batch 1, boxes and the frames/s line drawn, tracks and
gesture events, the annotated video written, with the file read as fast as the
detector takes frames (``--no-pace``: no frame dropped, so both see every
frame). Each prints frames/s (wall) and CPU-seconds per frame (this process,
os.times), the medians of ``--repeats`` runs taken in turns after one warm-up
run each; then one run played in real time at the video's frame rate says how
many frames live drops. Target: live at 30 frames/s or more on 2 cores.

The machine may be shared: the load average is printed with the CPU model.

    .venv/bin/python bench/live.py [--model results/model/inference.h5] [--threads 2] [--repeats 3]
"""
import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import cv2

from detflow import live
from detflow.demo import generate_video
from detflow.lib.inference.detector import Detector, load_inference_model
from detflow.lib.inference.events import EventSettings
from detflow.lib.model.card import read_card
from detflow.lib.model.device import setup_device
from machine import MODEL, cpu_model, project_config, require_model


def detector_alone(detector, video):
    capture = cv2.VideoCapture(str(video))
    frames = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        detector.detect(*([value] for value in detector.prepare(frame)))
        frames += 1


def live_run(detector, video, settings, out, *, paced):
    reader = live.NewestFrame(live.Source(str(video)), paced=paced, lossless=not paced, reconnects=0,
                              reconnect_delay=0)
    reader.start()
    return live.live(detector, reader, settings=settings, out_video=out)


def measured(function):
    """(wall seconds, CPU seconds of this process, result)."""
    cpu, wall = sum(os.times()[:2]), time.perf_counter()
    result = function()
    return time.perf_counter() - wall, sum(os.times()[:2]) - cpu, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=MODEL, type=Path)
    parser.add_argument("--seconds", type=float, default=8, help="length of the generated demo video")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for TensorFlow")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    require_model(args.model)
    config = project_config()
    card = read_card(args.model)
    device = setup_device(args.threads)
    detector = Detector(load_inference_model(args.model, card), card,
                        score_threshold=config["predict"]["score_threshold"])
    settings = EventSettings.from_config(config["events"])
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        demo = config["demo"]
        video = folder / "demo.mp4"
        generate_video(video, folder / "truth.csv", index=0, seed=demo["seed"], seconds=args.seconds,
                       fps=demo["fps"], width=demo["width"], height=demo["height"], classes=list(card.classes))
        contenders = {"detector alone (batch 1)": lambda: detector_alone(detector, video),
                      "live, --no-pace": lambda: live_run(detector, video, settings, folder / "out.mp4",
                                                          paced=False)["frames_processed"]}
        for function in contenders.values():
            function()  # warm-up: graph tracing, caches
        runs = {name: [] for name in contenders}
        for _ in range(args.repeats):
            for name, function in contenders.items():
                runs[name].append(measured(function))
        real_time = live_run(detector, video, settings, folder / "paced.mp4", paced=True)
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} "
          f"(a shared machine slows both alike); {device}")
    print(f"model: {card.backbone} RetinaNet, FPN/heads {card.feature_size} wide, images "
          f"{card.image_min_side}-{card.image_max_side} px; video: demo, {demo['width']}x{demo['height']}, "
          f"{demo['fps']} frames/s, {args.seconds:g} s")
    print(f"{'':<28}{'frames':>8}{'frames/s':>10}{'CPU s/frame':>13}   (medians of {args.repeats})")
    rates = {}
    for name, results in runs.items():
        frames = results[0][2]
        rates[name] = statistics.median(frames / wall for wall, _, _ in results)
        cpu = statistics.median(cpu / frames for _, cpu, _ in results)
        print(f"{name:<28}{frames:>8}{rates[name]:>10.1f}{cpu:>13.4f}")
    alone, ours = rates.values()
    print(f"ratio (live / detector alone): {ours / alone:.2f}x")
    print(f"live at {ours:.1f} frames/s: target >= 30 {'met' if ours >= 30 else 'NOT met'}")
    print(f"played in real time ({demo['fps']} frames/s): {real_time['frames_processed']} of "
          f"{real_time['frames_read']} frames detected, {real_time['frames_dropped']} dropped")


if __name__ == "__main__":
    main()

"""Benchmark of the dataset stage: validating and assembling 5,000 generated
labelImg annotations (with their JPEG frames) into the VOC tree.

References, measured in the same run on the same files: a plain loop of
``lxml.etree.parse`` over the XML files (parsing only, no checks, no output),
a plain loop of ``shutil.copyfile`` of the XML files (the cost of
creating one new file each, which the stage must pay for its normalised
annotations), and a plain loop decoding every frame with PIL as the stage
does (draft mode; the stage decodes every image it admits, so that a
truncated frame is refused by name instead of crashing training).
Target (issue 3): at least 1,000 files/s, and memory that does not grow with
the number of files beyond the file lists themselves; memory is measured in a
fresh process per size (tracemalloc peak and peak RSS at 1,000 and 5,000 files).

    .venv/bin/python bench/dataset.py [--files 5000] [--small 1000] [--repeats 3]
"""
import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
from lxml import etree
from PIL import Image

from detflow.dataset import build_dataset, index_images
from detflow.lib.data.annotation_sources import list_annotations
from detflow.lib.data.pascal_voc import write_annotation
from machine import project_config

CLASSES = ["grab", "drop"]
VIDEOS = 5
SIZE = (320, 240)
TARGET_FILES_PER_S = 1000


def generate(root, count):
    """``count`` frames in VIDEOS folders and one labelImg file each (2 boxes; 1 in 50 has a float coordinate)."""
    width, height = SIZE
    gradient = np.tile(np.linspace(0, 255, width, dtype=np.uint8), (height, 1))
    frame = cv2.imencode(".jpg", cv2.cvtColor(gradient, cv2.COLOR_GRAY2BGR))[1].tobytes()
    annotations = root / "annotations"
    annotations.mkdir(parents=True)
    frame_dirs = [root / "frames" / f"video_{v}" for v in range(VIDEOS)]
    for directory in frame_dirs:
        directory.mkdir(parents=True)
    for index in range(count):
        directory = frame_dirs[index % VIDEOS]
        image_id = f"{directory.name}_{index:06d}"
        (directory / f"{image_id}.jpg").write_bytes(frame)
        x = 1 + index % 200
        objects = [{"name": "grab", "xmin": x, "ymin": 10, "xmax": x + 60, "ymax": 90},
                   {"name": "drop", "xmin": 20, "ymin": 100, "xmax": 120, "ymax": 200}]
        path = annotations / f"{image_id}.xml"
        write_annotation(path, filename=f"{image_id}.jpg", width=width, height=height, objects=objects,
                         image_path=f"/home/someone/frames/{image_id}.jpg")
        if index % 50 == 0:
            path.write_text(path.read_text().replace(f"<xmin>{x}</xmin>", f"<xmin>{x}.0</xmin>", 1))
    return annotations, frame_dirs


def reference_parse(xml_files):
    started = time.perf_counter()
    for path in xml_files:
        etree.parse(str(path))
    return time.perf_counter() - started


def reference_decode(image_files):
    started = time.perf_counter()
    for path in image_files:
        with Image.open(path) as image:
            image.draft(image.mode, (image.width // 8, image.height // 8))
            image.load()
    return time.perf_counter() - started


def reference_copy(xml_files, target):
    target.mkdir(parents=True)
    started = time.perf_counter()
    for path in xml_files:
        shutil.copyfile(path, target / path.name)
    return time.perf_counter() - started


def measure(root, with_tracemalloc):
    """One size in this process: seconds, tracemalloc peak, bytes held by the file lists, peak RSS."""
    annotations, frame_dirs = root / "annotations", sorted((root / "frames").iterdir())
    dataset = project_config()["dataset"]  # the stage's settings, as the workflow passes them (not traced)
    lists_bytes = None
    if with_tracemalloc:
        tracemalloc.start()
        held = [list_annotations(annotations).files, index_images(frame_dirs)]
        lists_bytes = tracemalloc.get_traced_memory()[0]
        held.clear()
        tracemalloc.stop()
        tracemalloc.start()
    started = time.perf_counter()
    summary = build_dataset(annotations, frame_dirs, root / "voc", classes=CLASSES,
                            classes_from=dataset["classes_from"], on_error=dataset["on_error"],
                            boxes_outside=dataset["boxes_outside"])
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if with_tracemalloc else None
    return {"files": summary["annotation_files"], "used": summary["used"], "seconds": seconds, "tracemalloc_peak": peak,
            "lists_bytes": lists_bytes, "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}


def in_fresh_process(root, with_tracemalloc):
    command = [sys.executable, __file__, "--measure", str(root)] + (["--tracemalloc"] if with_tracemalloc else [])
    return json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per contender; the best counts")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--tracemalloc", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.tracemalloc)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        small, large = Path(tmp) / "small", Path(tmp) / "large"
        generate(small, args.small)
        annotations, _ = generate(large, args.files)
        xml_files = sorted(annotations.glob("*.xml"))
        reference_parse(xml_files)  # warm the page cache for both contenders
        # Best of several runs each: the machine is shared, and the fastest run is the least disturbed one.
        reference = min(reference_parse(xml_files) for _ in range(args.repeats))
        copying = min(reference_copy(xml_files, Path(tmp) / "copies" / str(run)) for run in range(args.repeats))
        frame_files = sorted((large / "frames").rglob("*.jpg"))
        decoding = min(reference_decode(frame_files) for _ in range(args.repeats))
        timed = min((in_fresh_process(large, False) for _ in range(args.repeats)), key=lambda result: result["seconds"])
        memory_small, memory_large = in_fresh_process(small, True), in_fresh_process(large, True)

    reference_rate = args.files / reference
    rate = timed["files"] / timed["seconds"]
    extra = args.files - args.small
    per_file = (memory_large["tracemalloc_peak"] - memory_small["tracemalloc_peak"]) / extra
    lists_per_file = (memory_large["lists_bytes"] - memory_small["lists_bytes"]) / extra
    rss = (memory_large["peak_rss_kib"] - memory_small["peak_rss_kib"]) * 1024 / extra
    print(f"dataset stage: {args.files} generated labelImg annotations (2 boxes each, 1 in 50 with a float "
          f"coordinate), {SIZE[0]}x{SIZE[1]} JPEG frames in {VIDEOS} video folders; best of {args.repeats} runs each")
    print(f"reference  lxml.etree.parse loop, same files:      {reference_rate:8.0f} files/s ({reference:.2f} s)")
    print(f"detflow    build_dataset (validate + assemble):    {rate:8.0f} files/s ({timed['seconds']:.2f} s, "
          f"{timed['used']} used)")
    print(f"reference  shutil.copyfile loop, same files:       {args.files / copying:8.0f} files/s ({copying:.2f} s)")
    print(f"reference  PIL decode loop (draft), same frames:  {args.files / decoding:8.0f} files/s ({decoding:.2f} s)")
    print(f"ratio      build_dataset / plain parse:            {rate / reference_rate:8.2f}")
    print(f"ratio      build_dataset / plain copy:             {rate / (args.files / copying):8.2f}")
    print(f"target     >= {TARGET_FILES_PER_S} files/s:                         "
          f"{'met' if rate >= TARGET_FILES_PER_S else 'NOT met'}")
    print(f"memory     tracemalloc peak {args.small} files: {memory_small['tracemalloc_peak'] / 2**20:.2f} MiB, "
          f"{args.files} files: {memory_large['tracemalloc_peak'] / 2**20:.2f} MiB "
          f"-> {per_file:.0f} bytes per extra file")
    print(f"           of which the file lists alone (paths, image index): {lists_per_file:.0f} bytes per file; "
          f"ratio {per_file / lists_per_file:.2f}")
    print(f"           peak RSS {args.small} files: {memory_small['peak_rss_kib'] / 1024:.1f} MiB, {args.files} files: "
          f"{memory_large['peak_rss_kib'] / 1024:.1f} MiB -> {rss:.0f} bytes per extra file")


if __name__ == "__main__":
    main()

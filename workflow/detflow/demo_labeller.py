"""The demo's labeller: it does for the demo what a person does with labelImg,
from the demo videos' ground truth.

For every frame chosen for labelling it writes a labelImg-style Pascal VOC
file with the frame's true boxes (VOC counts pixels from 1), so the demo's
labels take the path a person's labels take.
"""
import argparse
import logging
from pathlib import Path

import cv2

from detflow.lib.cli import InputError, prog, run
from detflow.lib.data.frame_lists import read_selection
from detflow.lib.data.gesture_truth import read_truth
from detflow.lib.data.pascal_voc import write_annotation

log = logging.getLogger(__name__)


def write_demo_labels(selections, truths, frame_dirs, out_dir):
    """labelImg-style VOC XML (``<frame stem>.xml``) with the true boxes of every frame chosen for labelling.

    ``selections``, ``truths`` and ``frame_dirs`` are per-video lists in the same order.
    Returns the number of files written.
    """
    if not len(selections) == len(truths) == len(frame_dirs):
        raise InputError(out_dir, "give one truth CSV and one frame folder per selection")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    for selection, truth, frame_dir in zip(selections, truths, frame_dirs):
        if not Path(selection).stem == Path(truth).stem == Path(frame_dir).name:
            raise InputError(selection, f"does not belong to the same video as {truth} and {frame_dir}")
        boxes = read_truth(truth)
        for frame_index, file_name in read_selection(selection):
            image = cv2.imread(str(Path(frame_dir) / file_name))
            if image is None:
                raise InputError(Path(frame_dir) / file_name, "frame chosen for labelling is missing or unreadable")
            height, width = image.shape[:2]
            objects = [
                {
                    "name": label,
                    # VOC counts pixels from 1.
                    "xmin": xmin + 1, "ymin": ymin + 1, "xmax": xmax + 1, "ymax": ymax + 1,
                    "truncated": int(xmin == 0 or ymin == 0 or xmax == width - 1 or ymax == height - 1),
                    "difficult": 0,
                }
                for label, xmin, ymin, xmax, ymax in boxes.get(frame_index, [])
            ]
            write_annotation(out_dir / f"{Path(file_name).stem}.xml", filename=file_name,
                             width=width, height=height, objects=objects)
            written += 1
    log.info("%d demo annotation files in %s", written, out_dir)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(prog=prog("demo_labeller"), description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", help="output folder of XML files")
    parser.add_argument("--selections", nargs="+", required=True, help="per-video selection CSVs")
    parser.add_argument("--truths", nargs="+", required=True, help="per-video ground-truth CSVs, same order")
    parser.add_argument("--frame-dirs", nargs="+", required=True, help="per-video frame folders, same order")
    args = parser.parse_args(argv)
    write_demo_labels(args.selections, args.truths, args.frame_dirs, args.out_dir)


if __name__ == "__main__":
    run(main)

"""Frames to label: choose per video, then gather them into one labelImg folder.

Choosing (:func:`select_frames`): among a video's kept frames, farthest-point
sampling on a descriptor made of a tiny colour thumbnail (appearance) and the
frame's timestamp (time), each part scaled to unit spread. It starts from the
first frame and repeatedly takes the frame least like everything chosen so
far, so the chosen frames cover both the whole video and its different looks
(lighting, background, poses) instead of many near-identical neighbours. It is
deterministic: same frames, same choice.

Gathering (:func:`labelling_folder`): the chosen frames of all videos are
copied into one folder, with ``classes.txt`` (labelImg's predefined classes,
one per line) and the exact command that opens labelImg on them
(``detflow label ...``), written to a file and printed.
"""
import argparse
import csv
import logging
import shlex
import shutil
from pathlib import Path

import cv2
import numpy as np

from detflow.lib.cli import InputError, prog, run
from detflow.lib.data.frame_lists import SELECTION_COLUMNS, read_kept_frames, read_selection

log = logging.getLogger(__name__)

DESCRIPTOR_SIZE = (16, 12)


def appearance(image_path):
    """Tiny Lab-colour thumbnail of an image, flattened."""
    image = cv2.imread(str(image_path), cv2.IMREAD_REDUCED_COLOR_4)
    if image is None:
        raise InputError(image_path, "frame is missing or not a readable image")
    small = cv2.resize(image, DESCRIPTOR_SIZE, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2Lab).astype(np.float64).ravel()


def _unit_spread(values):
    """Centre ``values`` (n x d) and scale them so that the mean squared distance to the centre is 1."""
    centred = values - values.mean(axis=0)
    spread = np.sqrt(np.mean(np.sum(centred ** 2, axis=1)))
    return centred / spread if spread > 0 else centred


def farthest_point_order(points, count):
    """Indices of ``count`` points chosen by farthest-point sampling, starting from point 0."""
    chosen = [0]
    distance = np.linalg.norm(points - points[0], axis=1)
    while len(chosen) < min(count, len(points)):
        best = int(np.argmax(distance))
        chosen.append(best)
        distance = np.minimum(distance, np.linalg.norm(points - points[best], axis=1))
    return chosen


def select_frames(manifest, frames_dir, out_csv, *, frames_per_video):
    """Write the CSV of the frames of one video chosen for labelling; return how many were chosen."""
    frames = read_kept_frames(manifest)
    if not frames:
        raise InputError(manifest, "no kept frames to choose from")
    descriptors = np.stack([appearance(Path(frames_dir) / file) for _, _, file in frames])
    times = np.array([[timestamp] for _, timestamp, _ in frames])
    points = np.hstack([_unit_spread(descriptors), _unit_spread(times)])
    chosen = sorted(farthest_point_order(points, frames_per_video))
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    with open(out_csv, "w", newline="") as handle:
        table = csv.writer(handle)
        table.writerow(SELECTION_COLUMNS)
        table.writerows((frames[i][0], f"{frames[i][1]:.3f}", frames[i][2]) for i in chosen)
    log.info("%s: chose %d of %d kept frames", manifest, len(chosen), len(frames))
    return len(chosen)


def labelimg_command(images_dir, classes_file, save_dir):
    """The shell command that opens labelImg (through detflow.labelimg, which adapts it to this Python)
    on the images, with the classes and the annotation folder. Paths stay as given (relative to the
    project folder), so the command still works in a moved or copied project."""
    options = (("--images", images_dir), ("--classes", classes_file), ("--save-dir", save_dir))
    return "detflow label " + " ".join(f"{flag} {shlex.quote(str(path))}" for flag, path in options)


def labelling_folder(selections, frame_dirs, images_dir, classes_file, command_file, *, classes, save_dir):
    """Copy the chosen frames of every video into ``images_dir``; write classes and the labelImg command.

    ``selections`` and ``frame_dirs`` are per-video lists in the same order
    (``<video>.csv`` with frame folder ``<video>``). Returns the command.
    """
    if len(selections) != len(frame_dirs):
        raise InputError(images_dir, "give one frame folder per selection")
    images_dir = Path(images_dir)
    if images_dir.is_dir() and any(images_dir.iterdir()):
        raise InputError(images_dir, "labelling folder is not empty; remove it or choose another one")
    images_dir.mkdir(parents=True, exist_ok=True)
    copied = 0
    for selection, frame_dir in zip(selections, frame_dirs):
        if Path(selection).stem != Path(frame_dir).name:
            raise InputError(selection, f"does not belong to frame folder {frame_dir}")
        for _, file in read_selection(selection):
            source = Path(frame_dir) / file
            if not source.is_file():
                raise InputError(source, "frame chosen for labelling is missing")
            shutil.copyfile(source, images_dir / file)
            copied += 1
    Path(classes_file).write_text("".join(f"{name}\n" for name in classes))
    command = labelimg_command(images_dir, classes_file, save_dir)
    Path(command_file).write_text(command + "\n")
    log.info("%d frames of %d videos to label in %s", copied, len(selections), images_dir)
    if not Path(save_dir).is_dir():
        log.warning("create the annotation folder before labelling: mkdir -p %s", shlex.quote(str(save_dir)))
    log.info("label them with: %s", command)
    print(command)
    return command


def main(argv=None):
    parser = argparse.ArgumentParser(prog=prog("frames_to_label"), description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    select = commands.add_parser("select", help="choose the frames of one video to label")
    select.add_argument("manifest", help="frame manifest CSV of the video")
    select.add_argument("frames_dir", help="folder of the video's frames")
    select.add_argument("out_csv", help="output CSV of the chosen frames")
    select.add_argument("--frames-per-video", type=int, required=True, help="how many frames to choose")
    folder = commands.add_parser("folder", help="gather the chosen frames of all videos for labelImg")
    folder.add_argument("--selections", nargs="+", required=True, help="per-video selection CSVs")
    folder.add_argument("--frame-dirs", nargs="+", required=True, help="per-video frame folders, same order")
    folder.add_argument("--images-dir", required=True, help="output folder of the images to label")
    folder.add_argument("--classes-file", required=True, help="output classes.txt")
    folder.add_argument("--command-file", required=True, help="output file holding the labelImg command")
    folder.add_argument("--classes", required=True, help="comma-separated class names")
    folder.add_argument("--save-dir", required=True, help="folder where labelImg saves the annotations")
    args = parser.parse_args(argv)
    if args.command == "select":
        select_frames(args.manifest, args.frames_dir, args.out_csv, frames_per_video=args.frames_per_video)
    else:
        labelling_folder(args.selections, args.frame_dirs, args.images_dir, args.classes_file, args.command_file,
                         classes=args.classes.split(","), save_dir=args.save_dir)


if __name__ == "__main__":
    run(main)

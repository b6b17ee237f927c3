"""Frames to label: choose per video, then gather them into one labelImg folder.

Choosing (:func:`select_frames`): among a video's kept frames, farthest-point
sampling on a descriptor made of a tiny colour thumbnail (appearance) and the
frame's timestamp (time), each part scaled to unit spread
(:mod:`detflow.lib.labelling.frame_points`). It starts from the
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

from detflow.lib.cli import InputError, prog, run
from detflow.lib.data.frame_lists import SELECTION_COLUMNS, read_kept_frames, read_selection
from detflow.lib.labelling.frame_points import farthest_point_order, frame_points

log = logging.getLogger(__name__)


def select_frames(manifest, frames_dir, out_csv, *, frames_per_video):
    """Write the CSV of the frames of one video chosen for labelling; return how many were chosen."""
    frames = read_kept_frames(manifest)
    if not frames:
        raise InputError(manifest, "no kept frames to choose from")
    points = frame_points([Path(frames_dir) / file for _, _, file in frames], [seconds for _, seconds, _ in frames])
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

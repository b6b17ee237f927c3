"""What training reads, as a content manifest: the annotation files and frames
of the train and val splits, with their SHA-256, and the settings that turn
them into the training data.

Training takes this manifest as its input instead of the whole VOC tree, so
that only a change to what it learns from reruns it: editing a box of a test
video reruns the dataset stage, evaluation and what follows, not training.
The rule's inputs are exactly these files (chosen before any job runs, by
:mod:`detflow.lib.data.split_rule`), so the manifest is only rewritten when one of
them, or a setting, changes.
"""
import argparse
import hashlib
import json
import logging
from pathlib import Path

from detflow.lib.cli import InputError, prog, run
from detflow.lib.data.annotation_sources import list_annotations
from detflow.lib.data.videos import FRAME_SUFFIXES, frame_id
from detflow.lib.files import write_atomically

log = logging.getLogger(__name__)



def _digest(data):
    return hashlib.sha256(data).hexdigest()


def manifest(annotation_files, frame_dirs, settings):
    """{"settings", "annotations": {file: sha256}, "images": {image id: sha256}, "digest"} of the
    annotation files given and the frames they label (frames nobody labelled are not read)."""
    annotations = {str(path): _digest(Path(path).read_bytes()) for path in sorted(annotation_files)}
    labelled = {frame_id(Path(path).name) for path in annotation_files}
    images = {}
    for frame_dir in map(Path, frame_dirs):
        if not frame_dir.is_dir():
            raise InputError(frame_dir, "frame folder not found (the frames stage writes it)")
        for path in sorted(frame_dir.iterdir()):
            if path.suffix.lower() in FRAME_SUFFIXES and frame_id(path) in labelled:
                images[frame_id(path)] = _digest(path.read_bytes())
    content = {"settings": settings, "annotations": annotations, "images": images}
    content["digest"] = _digest(json.dumps(content, sort_keys=True).encode())
    return content


def annotation_source_files(source):
    """Every annotation file of a folder or zip export (a zip counts as one file: its own bytes)."""
    listing = list_annotations(source)
    if listing.is_zip:
        return [Path(source)]
    return [Path(file.where) for file in listing.files]


def main(argv=None):
    parser = argparse.ArgumentParser(prog=prog("training_inputs"), description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="the manifest to write (JSON)")
    parser.add_argument("--annotations", nargs="*", default=[],
                        help="annotation files of the train and val images (or an annotation folder or zip)")
    parser.add_argument("--frame-dirs", nargs="*", default=[], help="frame folders of the train and val videos")
    parser.add_argument("--settings", default="{}", help="JSON of the settings that shape the training data")
    args = parser.parse_args(argv)
    files = []
    for item in map(Path, args.annotations):
        files.extend(annotation_source_files(item) if item.is_dir() or item.suffix.lower() == ".zip" else [item])
    content = manifest(files, args.frame_dirs, json.loads(args.settings))
    write_atomically(args.out, json.dumps(content, indent=1, sort_keys=True) + "\n")
    log.info("%d annotation files and %d labelled frames of the train and val splits: %s", len(content["annotations"]),
             len(content["images"]), content["digest"][:16])


if __name__ == "__main__":
    run(main)

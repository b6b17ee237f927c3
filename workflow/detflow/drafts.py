"""Model-assisted labelling: draft labelImg annotations, made by the current
model, for the frames chosen for labelling that nobody has labelled yet.

- The frames are those of the labelling stage's selections
  (``results/labelling/selected/<video>.csv``), read from their frame folders.
- A frame is labelled when the person's annotations folder holds an XML file
  with its id (matched as the dataset stage matches them).
- Drafts go to their own folder, never into the person's folder, and an
  existing draft is never overwritten (someone may be correcting it): a rerun
  only adds drafts for frames that have none yet.
- A frame with no detection above the score threshold gets no draft: an empty
  draft, once copied, would say "nothing here" without anyone having looked.
- The files are labelImg's own format (:func:`detflow.lib.data.pascal_voc.write_annotation`):
  boxes in 1-based VOC pixel coordinates, ``<path>`` the frame in the
  labelling folder, so labelImg opens each frame with its draft.
- A manifest CSV lists every chosen frame and what happened to it. The
  commands to review the drafts in labelImg and to copy them, without
  replacing any file, into the annotations folder are printed.
"""
import argparse
import csv
import logging
import shlex
from collections import Counter
from pathlib import Path

from detflow.lib.cli import InputError, add_model_options, model_options, prog, run
from detflow.lib.data.annotation_sources import labelled_image_ids
from detflow.lib.data.frame_lists import chosen_frames
from detflow.lib.inference.detector import Unreadable, detect_images, load_detector
from detflow.lib.labelling.drafts import write_draft
from detflow.lib.model.runtimes import RUNTIMES

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ("image", "video", "file", "status", "boxes", "draft")
DRAFTED, EXISTS, LABELLED, NOTHING, UNREADABLE = "drafted", "draft exists", "labelled", "no detections", "unreadable"


def _check_separate(drafts_dir, annotations_dir):
    drafts, annotations = Path(drafts_dir).resolve(), Path(annotations_dir).resolve()
    if drafts == annotations or annotations in drafts.parents or drafts in annotations.parents:
        raise InputError(drafts_dir, f"overlaps the annotations folder {annotations_dir}: drafts never go "
                                     "into the person's folder; choose another drafts folder")


def write_drafts(detector, selections, frame_dirs, annotations_dir, drafts_dir, manifest, *, labelling_images_dir,
             batch_size=8):
    """Write drafts for the chosen frames that are neither labelled nor drafted yet, and the manifest.
    Returns {status: number of frames}."""
    _check_separate(drafts_dir, annotations_dir)
    drafts_dir = Path(drafts_dir)
    drafts_dir.mkdir(parents=True, exist_ok=True)
    labelled = labelled_image_ids(annotations_dir)
    rows, to_predict = {}, []
    for image_id, video, path in chosen_frames(selections, frame_dirs):
        draft = drafts_dir / f"{image_id}.xml"
        if image_id in labelled:
            rows[image_id] = [image_id, video, path.name, LABELLED, "", ""]
        elif draft.exists():
            rows[image_id] = [image_id, video, path.name, EXISTS, "", draft]
        else:
            rows[image_id] = [image_id, video, path.name, None, "", ""]
            to_predict.append((image_id, path))
    for image_id, image, detections in detect_images(detector, to_predict, batch_size):
        row = rows[image_id]
        if isinstance(image, Unreadable):
            row[3] = UNREADABLE
        elif not detections:
            row[3] = NOTHING
        else:
            draft = drafts_dir / f"{image_id}.xml"
            row[3:] = [DRAFTED, write_draft(draft, Path(row[2]), image, detections, labelling_images_dir), draft]
    manifest = Path(manifest)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    with open(manifest, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(MANIFEST_COLUMNS)
        writer.writerows(rows.values())
    counts = Counter(row[3] for row in rows.values())
    log.info("%d chosen frames: %s", len(rows), ", ".join(f"{count} {status}" for status, count in counts.items()))
    return dict(counts)


def instructions(counts, drafts_dir, annotations_dir, labelling_images_dir, classes_file, score_threshold):
    """What a person does with the drafts, as text to print."""
    lines = [f"Drafts: {counts.get(DRAFTED, 0)} new in {drafts_dir} ({counts.get(EXISTS, 0)} kept from before, "
             f"{counts.get(LABELLED, 0)} frames labelled already, {counts.get(NOTHING, 0)} with no detection "
             f"scoring {score_threshold:g} or more, {counts.get(UNREADABLE, 0)} unreadable)."]
    if counts.get(DRAFTED, 0) or counts.get(EXISTS, 0):
        paths = {name: shlex.quote(str(path)) for name, path in (
            ("images", labelling_images_dir), ("classes", classes_file), ("drafts", drafts_dir),
            ("annotations", annotations_dir))}
        lines += [
            "Review and correct them in labelImg (it opens each frame with its draft); press space on each one",
            "you have checked (Verify Image, which saves it):",
            f"  detflow label --drafts --images {paths['images']} --classes {paths['classes']} "
            f"--drafts-dir {paths['drafts']}",
            "Then copy the reviewed drafts into your annotations folder (a file already there is never replaced):",
            f"  detflow label accept --drafts-dir {paths['drafts']} --save-dir {paths['annotations']} "
            f"--images {paths['images']}",
        ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog=prog("drafts"), description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the inference model (.h5); with --runtime tf|onnx|tflite, its export")
    parser.add_argument("--selections", nargs="+", required=True, help="per-video CSVs of the frames chosen for labelling")
    parser.add_argument("--frame-dirs", nargs="+", required=True, help="per-video frame folders, same order")
    parser.add_argument("--annotations-dir", required=True, help="the person's annotations folder (only read)")
    parser.add_argument("--drafts-dir", required=True, help="folder for the drafts (never the annotations folder)")
    parser.add_argument("--manifest", required=True, help="CSV listing every chosen frame and what was done")
    parser.add_argument("--labelling-images", required=True, help="the labelling folder labelImg opens")
    parser.add_argument("--classes-file", required=True, help="labelImg's classes.txt")
    parser.add_argument("--score-threshold", type=float, required=True, help="lowest score of a draft box")
    parser.add_argument("--batch-size", type=int, required=True, help="images per inference batch")
    add_model_options(parser, runtimes=RUNTIMES)
    args = parser.parse_args(argv)
    detector = load_detector(args.model, score_threshold=args.score_threshold, **model_options(args))
    counts = write_drafts(detector, args.selections, args.frame_dirs, args.annotations_dir, args.drafts_dir,
                      args.manifest, labelling_images_dir=args.labelling_images, batch_size=args.batch_size)
    print(instructions(counts, args.drafts_dir, args.annotations_dir, args.labelling_images, args.classes_file,
                       args.score_threshold))


if __name__ == "__main__":
    run(main)

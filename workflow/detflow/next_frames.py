"""Next frames to label, chosen by the model: among all kept frames of all videos that are neither labelled
nor chosen yet, the ``--batch`` the model is least sure about, spread over what the videos show
(:mod:`detflow.lib.labelling.next_frames` says how and why).

A round writes:

- ``<added-dir>/<video>.csv``: the frames added for labelling, per video, in the selection format of the
  frames_to_label stage; the labelling folder, the dataset stage, drafts and Label Studio take them as
  chosen frames, round after round;
- ``--report`` (``results/labelling/next_frames.csv``): each added frame with its round and why it was
  chosen: score = uncertainty x novelty, the score entropy, the mirror disagreement and the boxes;
- the frames copied into the labelling folder, with the model's drafts in the drafts folder (never over a
  draft or a person's label), so that ``detflow label --drafts`` opens them.

The model is the one that exists (``labelling.draft_model``): choosing never waits for training.
"""
import argparse
import csv
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np

from detflow.lib.cli import InputError, add_model_options, model_options, prog, run
from detflow.lib.data.annotation_sources import labelled_image_ids
from detflow.lib.data.frame_lists import SELECTION_COLUMNS, chosen_frames, read_kept_frames
from detflow.lib.data.videos import frame_id
from detflow.lib.files import write_atomically
from detflow.lib.inference.detector import Detection, frame_reader, load_checked_model
from detflow.lib.labelling.drafts import write_draft
from detflow.lib.labelling.frame_points import frame_points
from detflow.lib.labelling.next_frames import choose, mirror_disagreement, mirrored, score_entropy, uncertainty
from detflow.lib.progress import Progress

log = logging.getLogger(__name__)

REPORT_COLUMNS = ("round", "rank", "video", "frame_index", "timestamp_s", "file", "score", "uncertainty",
                  "score_entropy", "mirror_disagreement", "novelty", "boxes")
KEEP_REPORT = "rename it to keep it, and the next round starts a new report"


def kept_frames(manifests, frame_dirs):
    """[(video, frame index, seconds, path)] of every kept frame of every video."""
    frames = []
    for manifest, frame_dir in zip(map(Path, manifests), map(Path, frame_dirs)):
        if manifest.stem != frame_dir.name:
            raise InputError(manifest, f"does not belong to frame folder {frame_dir}")
        frames += [(manifest.stem, index, seconds, frame_dir / file) for index, seconds, file in
                   read_kept_frames(manifest)]
    return frames


def _read(path):
    image = cv2.imread(str(path))
    if image is None:
        raise InputError(path, "frame is missing or not a readable image")
    return image


def measure(read, paths, score_threshold):
    """For each frame: (uncertainty, score entropy, mirror disagreement, its boxes at ``score_threshold`` as
    Detections' parts, the image), read with ``read`` (detector.frame_reader)."""
    measured = []
    with Progress("scoring frames", len(paths), "frames") as meter:
        for path in paths:
            image = _read(path)
            boxes, scores, labels = read(image)
            mirror_boxes, mirror_scores, mirror_labels = read(np.ascontiguousarray(image[:, ::-1]))
            entropy = score_entropy(scores)
            disagreement = mirror_disagreement(
                (boxes, scores, labels), (mirrored(mirror_boxes, image.shape[1]), mirror_scores, mirror_labels))
            kept = scores >= score_threshold
            measured.append((uncertainty(entropy, disagreement), entropy, disagreement,
                             (boxes[kept], scores[kept], labels[kept]), image))
            meter.update()
    return measured


def choose_frames(read, frames, taken, batch, score_threshold):
    """Of ``frames`` (kept_frames'), the ``batch`` to label next among those whose id is not in ``taken``:
    [(frame, Pick, its measure)], in the order chosen; novelty is against the frames taken."""
    is_known = np.array([frame_id(path) in taken for *_, path in frames], bool)
    points = frame_points([path for *_, path in frames], [seconds for _, _, seconds, _ in frames],
                          [video for video, *_ in frames])
    candidates = [frame for frame, known in zip(frames, is_known) if not known]
    measured = measure(read, [path for *_, path in candidates], score_threshold)
    picks = choose([item[0] for item in measured], points[~is_known], points[is_known], batch)
    return [(candidates[pick.index], pick, measured[pick.index]) for pick in picks]


def _append_csv(path, columns, rows):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = path.read_text().rstrip("\n") if path.is_file() else ""
    lines = [",".join(str(value) for value in row) for row in rows]
    write_atomically(path, "".join(line + "\n" for line in [existing or ",".join(columns), *lines]))


def next_round(report):
    """The number of the next round of the report (1 for a new or empty one); InputError for a report that
    is not one (edited, or written by another version), which is never overwritten."""
    report = Path(report)
    if not report.is_file():
        return 1
    try:
        with open(report, newline="") as stream:
            reader = csv.reader(stream)
            lines = [(reader.line_num, line) for line in reader if line]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(report, f"cannot be read ({error}); {KEEP_REPORT}") from None
    if lines and lines[0][1] != list(REPORT_COLUMNS):
        raise InputError(report, f"is not next_frames' report (its columns are not {','.join(REPORT_COLUMNS)}); "
                                 + KEEP_REPORT)
    for number, (first, *_) in lines[1:]:
        if not first.isdecimal():  # what int() reads (isdigit also takes "²")
            raise InputError(report, f"line {number}: round {first!r} is not a whole number; {KEEP_REPORT}")
    return 1 + max((int(first) for _, (first, *_) in lines[1:]), default=0)


def next_frames(read, card, *, manifests, frame_dirs, selections, selection_frame_dirs, annotations_dir,
                added_dir, report, labelling_images, drafts_dir, batch, score_threshold):
    """Choose and add the next ``batch`` frames to label; return the report's rows of this round."""
    labelled = labelled_image_ids(annotations_dir)
    taken = labelled | {image_id for image_id, _, _ in chosen_frames(selections, selection_frame_dirs)}
    frames = kept_frames(manifests, frame_dirs)
    candidates = sum(frame_id(path) not in taken for *_, path in frames)
    if not candidates:
        raise InputError(added_dir, "every kept frame is labelled or chosen already: there is nothing left to choose")
    number, rows = next_round(report), []
    names = dict(enumerate(card.classes))
    for rank, (frame, pick, measured) in enumerate(choose_frames(read, frames, taken, batch, score_threshold), 1):
        video, index, seconds, path = frame
        _, entropy, disagreement, (boxes, scores, labels), image = measured
        detections = [Detection(int(label), names[int(label)], float(score), tuple(map(float, box)))
                      for box, score, label in zip(boxes, scores, labels)]
        _add(video, index, seconds, path, image, detections, added_dir, labelling_images, drafts_dir, labelled)
        rows.append((number, rank, video, index, f"{seconds:.3f}", path.name, f"{pick.score:.4f}",
                     f"{pick.uncertainty:.4f}", f"{entropy:.4f}", f"{disagreement:.4f}", f"{pick.novelty:.4f}",
                     len(detections)))
    _append_csv(report, REPORT_COLUMNS, rows)
    log.info("round %d: %d frames added for labelling of %d candidates (%d known)", number, len(rows),
             candidates, len(frames) - candidates)
    return rows


def _add(video, index, seconds, path, image, detections, added_dir, labelling_images, drafts_dir, labelled):
    """Add one frame: its line in the video's added list, its copy in the labelling folder, its draft."""
    _append_csv(Path(added_dir) / f"{video}.csv", SELECTION_COLUMNS, [(index, f"{seconds:.3f}", path.name)])
    Path(labelling_images).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, Path(labelling_images) / path.name)
    draft = Path(drafts_dir) / f"{frame_id(path)}.xml"
    if detections and frame_id(path) not in labelled and not draft.exists():
        Path(drafts_dir).mkdir(parents=True, exist_ok=True)
        write_draft(draft, Path(path.name), image, detections, labelling_images)


def summary(rows, drafts_dir):
    """What a person does next, as text to print."""
    drafted = sum(1 for row in rows if row[-1])
    lines = [f"next frames: {len(rows)} added for labelling (round {rows[0][0]}), {drafted} with the model's "
             f"boxes as drafts in {drafts_dir}; why each was chosen: results/labelling/next_frames.csv",
             "Correct the drafts and label the rest: detflow label --drafts (space marks a frame reviewed), then "
             "detflow label accept; or label them in Label Studio (snakemake --cores all label_studio_drafts)."]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog=prog("next_frames"), description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the inference model (.h5) that chooses and drafts")
    parser.add_argument("--manifests", nargs="+", required=True, help="frame manifests of all videos")
    parser.add_argument("--frame-dirs", nargs="+", required=True, help="their frame folders, in the same order")
    parser.add_argument("--selections", nargs="+", required=True,
                        help="the frames chosen already: per-video selections and earlier rounds' added lists")
    parser.add_argument("--selection-frame-dirs", nargs="+", required=True, help="their frame folders, in order")
    parser.add_argument("--annotations-dir", required=True, help="the person's labels (frames labelled)")
    parser.add_argument("--added-dir", required=True, help="folder of the per-video lists of added frames")
    parser.add_argument("--report", required=True, help="CSV of every added frame and why it was chosen")
    parser.add_argument("--labelling-images", required=True, help="the labelling folder")
    parser.add_argument("--drafts-dir", required=True, help="the drafts folder")
    parser.add_argument("--batch", type=int, required=True, help="frames to add in this round")
    parser.add_argument("--score-threshold", type=float, required=True, help="lowest score of a draft box")
    add_model_options(parser)
    args = parser.parse_args(argv)
    options = model_options(args)
    card, model = load_checked_model(args.model, **options)
    rows = next_frames(frame_reader(model, card), card, manifests=args.manifests, frame_dirs=args.frame_dirs,
                       selections=args.selections, selection_frame_dirs=args.selection_frame_dirs,
                       annotations_dir=args.annotations_dir, added_dir=args.added_dir, report=args.report,
                       labelling_images=args.labelling_images, drafts_dir=args.drafts_dir, batch=args.batch,
                       score_threshold=args.score_threshold)
    print(summary(rows, args.drafts_dir))


if __name__ == "__main__":
    run(main)

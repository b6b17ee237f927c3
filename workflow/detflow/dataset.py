"""Annotation intake: Pascal VOC XML files and their images become a validated
Pascal VOC tree (``JPEGImages/``, ``Annotations/``, ``classes.json``,
``images.csv``, ``validation.json``, ``validation.txt``).

The annotations are labelImg's folder, or another tool's Pascal VOC export
(AnyLabeling, CVAT, Label Studio), as a folder or as the export's ``.zip``,
read in place: :mod:`detflow.lib.data.annotation_sources` says which files count and
which are ignored (hidden files, macOS's ``._x.xml``), and how file names map
to image ids (Label Studio's upload prefix included).

Rules, so that what keras-retinanet reads is exactly what the person drew:

- An annotation belongs to the image with the same name: ``x.xml`` <-> ``x.jpg``
  (labelImg names its files this way). ``<filename>`` only draws a warning when
  it disagrees, and the absolute ``<path>`` that labelImg and AnyLabeling write
  is never read. Names become image ids with the same safe-name rule as video
  ids (keras-retinanet splits its list files on whitespace).
- Every problem is reported with its file and, where it concerns one box, the
  box's index (``<object>`` elements counted from 1). Errors make a file
  unusable: ``dataset.on_error`` either stops at the first such file or skips
  it with a warning. Warnings are fixed and noted: ``210.0`` rounded to 210
  (one note for a file whose every coordinate is a decimal, as CVAT writes
  them), a missing ``<truncated>``/``<difficult>`` filled with 0, a box partly
  outside the image clipped (unless ``dataset.boxes_outside`` is ``reject``).
- Boxes use VOC's 1-based pixel coordinates: inside means
  ``1 <= xmin < xmax <= width`` (and the same for y).
- Every admitted image is decoded (in parallel, by PIL as keras-retinanet
  reads it, at reduced DCT scale, which still reads all of its data): an
  image truncated or corrupted on disk is an error of its annotation file,
  naming the image, never a crash of training later.
- A file with no boxes is a valid negative. A frame chosen for labelling with
  no annotation yet is listed, with the labelImg command that opens it; it is
  not an error (the person may still be labelling).
- Class ids follow the configured class order, or, with ``classes_from
  annotations``, the sorted names of every class in the usable files. Class
  names are compared after Unicode NFC normalisation, in the files and in the
  configuration alike.

The inputs are only read: images are hard-linked into ``JPEGImages`` (copied
where linking is impossible) and annotations are written anew, normalised.
"""
import argparse
import csv
import json
import logging
import os
import shutil
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from detflow.lib.cli import InputError, run
from detflow.lib.data.annotation_sources import image_id as annotation_image_id
from detflow.lib.data.annotation_sources import is_zip_source, list_annotations, read_annotations
from detflow.lib.data.frame_lists import read_selection
from detflow.lib.data.pascal_voc import (
    ERROR, WARNING, Annotation, Problem, condensed_problems, read_annotation_bytes, write_annotation,
)
from detflow.lib.data.videos import FRAME_SUFFIXES, frame_id
from detflow.lib.data.voc_tree import IMAGES_DIR, VocTree, class_names, write_classes

log = logging.getLogger(__name__)

# Images decoded ahead of the annotation being checked (PIL decodes without the GIL).
DECODE_THREADS = min(8, os.cpu_count() or 1)
DECODE_AHEAD = 64
BOX_POLICY = {"clip": "clipped", "reject": "rejected"}


def index_images(image_dirs):
    """Map each image id to the JPEG files with that id (an image's folder name is its group)."""
    images = {}
    for directory in map(Path, image_dirs):
        if not directory.is_dir():
            raise InputError(directory, "image folder not found")
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.lower().endswith(FRAME_SUFFIXES) and entry.is_file():
                    path = Path(entry.path)
                    images.setdefault(frame_id(path), []).append(path)
    return images


def decoded_image(path):
    """((width, height, depth), None) when the whole image decodes, else (None, the problem).

    The image is decoded with PIL, keras-retinanet's reader, in draft mode (JPEG's DCT scaling to 1/8):
    every byte of the compressed data is still read, so a truncated file fails here as it would in
    training ("image file is truncated"), at a fraction of a full decode's cost.
    """
    try:
        with Image.open(path) as image:
            properties = image.width, image.height, len(image.getbands())
            try:
                image.draft(image.mode, (max(image.width // 8, 1), max(image.height // 8, 1)))
                image.load()
            except (OSError, ValueError, SyntaxError) as error:
                return None, Problem("image_damaged", f"the image {path} cannot be decoded ({error}): it is "
                                                      "damaged (truncated or corrupt); extract or copy it again")
            return properties, None
    except (OSError, ValueError, SyntaxError):
        return None, Problem("image_unreadable", f"the image {path} cannot be read")


def check_box(box, width, height, boxes_outside, index):
    """The box to keep (clipped if allowed) and the problems of one box."""
    xmin, ymin, xmax, ymax = box
    if xmin > xmax or ymin > ymax:
        return None, [Problem("box_inverted", f"box {box} is inverted (xmin > xmax or ymin > ymax)", ERROR, index)]
    if xmin == xmax or ymin == ymax:
        return None, [Problem("box_empty", f"box {box} has zero area", ERROR, index)]
    inside = (max(xmin, 1), max(ymin, 1), min(xmax, width), min(ymax, height))
    if inside == box:
        return box, []
    where = f"box {box} reaches outside the {width}x{height} image (VOC coordinates run from 1 to the width/height)"
    if inside[0] >= inside[2] or inside[1] >= inside[3]:
        return None, [Problem("box_outside", f"{where}, entirely", ERROR, index)]
    if boxes_outside == "reject":
        return None, [Problem("box_outside", where, ERROR, index)]
    return inside, [Problem("box_outside", f"{where}; clipped to {inside}", WARNING, index)]


def check_annotation(annotation, name, image_id, image_files, classes, boxes_outside, same_id=(), image_ids=None,
                     decoded=None):
    """Check one annotation file (``name``: its path inside its source) against its image;
    ``same_id``: those paths of all annotation files with this image id, when there are several;
    ``image_ids``: the ids of all images, to match names as :func:`annotation_image_id` does;
    ``decoded``: :func:`decoded_image` of the image when already done (else done here).

    Returns (objects, with boxes clipped where allowed; image properties;
    problems). The objects are only usable when no problem is an error.
    """
    problems = condensed_problems(annotation)
    if same_id:
        others = ", ".join(other for other in same_id if other != name)
        problems.append(Problem("duplicate_image_id", f"image id {image_id!r} is also the id of {others}"))
    if annotation.filename and annotation_image_id(annotation.filename, image_ids) != image_id:
        problems.append(Problem(
            "filename_mismatch",
            f"<filename> says {annotation.filename!r}; the image is matched by the annotation's own name ({image_id})",
            WARNING,
        ))
    properties = None
    if not image_files:
        problems.append(Problem("image_missing", f"no image named {image_id}.jpg (or .jpeg) among the images"))
    elif len(image_files) > 1:
        names = ", ".join(str(file) for file in image_files)
        problems.append(Problem("duplicate_image_id", f"image id {image_id!r} matches several images: {names}"))
    else:
        properties, image_problem = decoded or decoded_image(image_files[0])
        if image_problem is not None:
            problems.append(image_problem)
        elif annotation.width and annotation.height and (annotation.width, annotation.height) != properties[:2]:
            problems.append(Problem(
                "size_mismatch",
                f"<size> says {annotation.width}x{annotation.height} but the image {image_files[0].name} "
                f"is {properties[0]}x{properties[1]}",
            ))
    size_known = properties is not None and not any(p.code.startswith("size_") for p in problems)
    for item in annotation.objects:
        if item.name is not None and classes is not None and item.name not in classes:
            problems.append(Problem(
                "unknown_class", f"class {item.name!r} is not among the classes {', '.join(classes)}", ERROR, item.index
            ))
        if item.box is not None and size_known:
            box, box_problems = check_box(item.box, properties[0], properties[1], boxes_outside, item.index)
            problems.extend(box_problems)
            if box is not None:
                item.box = box
    return annotation.objects, properties, problems


def _problem_record(file, problem, fix=None):
    record = {"file": str(file), "object": problem.object_index, "severity": problem.severity,
              "code": problem.code, "message": problem.message}
    if fix:
        record["fix"] = fix
    return record


def _describe(record):
    where = f"object {record['object']}: " if record["object"] is not None else ""
    return f"{where}{record['message']}"


def _link_or_copy(source, target):
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed
        shutil.copyfile(source, target)


def _prepare_output(output_dir, input_dirs):
    """Empty JPEGImages/ and Annotations/ under ``output_dir``, refusing to touch any input folder."""
    output_dir = Path(output_dir)
    targets = [VocTree(output_dir).images, VocTree(output_dir).annotations]
    for target in targets:
        resolved = target.resolve()
        for source in input_dirs:
            source = Path(source).resolve()
            if source == resolved or resolved in source.parents or source in resolved.parents:
                raise InputError(source, f"is an input folder and overlaps the output {target}; choose another output folder")
    for target in targets:
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
    return targets


def missing_annotations(selections, labelled_ids, annotations_dir, labelimg_command):
    """Problem records for frames chosen for labelling that have no annotation file yet."""
    records = []
    for selection in map(Path, selections):
        for _, file in read_selection(selection):
            image_id = frame_id(file)
            if image_id not in labelled_ids:
                if is_zip_source(annotations_dir):
                    expected = Path(annotations_dir)
                    fix = (f"label it in the tool that made {expected.name}, export again and replace the zip "
                           "(Label Studio's Pascal VOC export leaves out images without boxes: such frames "
                           "cannot be kept as negatives)")
                else:
                    expected = Path(annotations_dir) / f"{image_id}.xml"
                    fix = labelimg_command or f"labelImg, saving Pascal VOC files into {annotations_dir}"
                message = f"frame {file} was chosen for labelling ({selection.name}) but has no annotation yet"
                records.append(_problem_record(expected, Problem("annotation_missing", message, WARNING), fix))
    return records


def _refuse(path, errors, on_error):
    """Stop at a bad file (InputError naming it and its first problem), or log that it is skipped."""
    if on_error == "stop":
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise InputError(path, _describe(errors[0]) + more)
    log.warning("skipped %s: %s", path, "; ".join(_describe(record) for record in errors))


def _write_example(image_id, source, properties, objects, images_out, annotations_out):
    """Link the image into JPEGImages and write its normalised annotation into Annotations."""
    _link_or_copy(source, images_out / f"{image_id}.jpg")
    width, height, depth = properties
    write_annotation(annotations_out / f"{image_id}.xml", filename=f"{image_id}.jpg", width=width, height=height,
                     depth=depth, objects=[item.as_dict() for item in objects], folder=IMAGES_DIR)


def _duplicate_ids(ids):
    """{image id: annotation file paths} for the ids that more than one annotation file maps to."""
    names = {}
    for file, image_id in ids.items():
        names.setdefault(image_id, []).append(file.member)
    return {image_id: found for image_id, found in names.items() if len(found) > 1}


def _read(file, data, problem):
    """The Annotation of one file's bytes, or one holding the problem that kept them from being read."""
    if problem is not None:
        return Annotation(file.where, problems=[problem])
    return read_annotation_bytes(data, file.where)


def _ignored_note(ignored):
    """One note for every entry of the source that was left out (validation.json lists each)."""
    shown = ", ".join(Path(where).name or where for where, _ in ignored[:5]) + (", ..." if len(ignored) > 5 else "")
    return (f"{len(ignored)} entries of the annotations were ignored ({shown}): hidden files (names starting with '.', "
            "such as macOS's ._x.xml and .DS_Store) and unsafe or macOS-only zip members are not annotations")


def _checked_classes(classes, classes_from):
    classes = class_names(classes)
    if classes_from == "config" and len(set(classes)) != len(classes):
        twice = next(name for name, count in Counter(classes).items() if count > 1)
        raise InputError("classes", f"{twice!r} is listed more than once; list each class once, in label-id order")
    return classes


def _listing(annotations_dir, labelimg_command):
    """The annotation files of the folder or zip; InputError when it holds none."""
    listing = list_annotations(annotations_dir)
    if not listing.files:
        hint = f" Label the chosen frames with: {labelimg_command}" if labelimg_command and not listing.is_zip else ""
        place = "zip (looked for XML files under Annotations/, or anywhere)" if listing.is_zip else "folder"
        raise InputError(annotations_dir, f"no annotation files (*.xml) in this {place}.{hint}")
    return listing


def _intake(listing, ids, images, table, out_dirs, *, accepted, boxes_outside, on_error):
    """Check every annotation, write the usable ones into the tree and the image table; return
    (problem records, boxes per class, files used, negatives)."""
    duplicates = _duplicate_ids(ids)
    records, boxes = [], Counter()
    used = negatives = 0

    def image_of(item):
        found = images.get(ids[item[0]], [])
        return found[0] if len(found) == 1 else None

    with open(table, "w", newline="") as stream, ThreadPoolExecutor(DECODE_THREADS) as pool:
        rows = csv.writer(stream)
        for (file, data, problem), decoded in _decoded_ahead(read_annotations(listing), image_of, pool):
            image_id = ids[file]
            objects, properties, problems = check_annotation(
                _read(file, data, problem), file.member, image_id, images.get(image_id, []), accepted,
                boxes_outside, duplicates.get(image_id, ()), images, decoded)
            file_records = [_problem_record(file.where, problem) for problem in problems]
            records.extend(file_records)
            errors = [record for record in file_records if record["severity"] == ERROR]
            if errors:
                _refuse(file.where, errors, on_error)
                continue
            source = images[image_id][0]
            _write_example(image_id, source, properties, objects, *out_dirs)
            counts = Counter(item.name for item in objects)
            boxes.update(counts)
            used += 1
            negatives += not counts
            rows.writerow([image_id, source.parent.name, *properties[:2], json.dumps(counts), source, file.where])
    return records, boxes, used, negatives


def _decoded_ahead(items, image_of, pool):
    """Each item with :func:`decoded_image` of its image (None without one), the decoding done by ``pool``
    up to DECODE_AHEAD items ahead; the items keep their order and memory stays bounded."""
    pending = deque()
    for item in items:
        path = image_of(item)
        pending.append((item, pool.submit(decoded_image, path) if path is not None else None))
        if len(pending) > DECODE_AHEAD:
            item, future = pending.popleft()
            yield item, future and future.result()
    while pending:
        item, future = pending.popleft()
        yield item, future and future.result()


def _notes(class_ids, boxes, used, listing):
    notes = [f"class {name!r} has no boxes in any usable annotation" for name in class_ids if not boxes[name]]
    if used and not boxes:
        notes.append("no usable annotation has any box: nothing to train on")
    if listing.ignored:
        notes.append(_ignored_note(listing.ignored))
    return notes


def build_dataset(annotations_dir, image_dirs, output_dir, *, classes, classes_from, on_error, boxes_outside,
                  selections=(), labelimg_command=None):
    """Validate every annotation in ``annotations_dir`` and write the VOC tree to ``output_dir``.

    ``image_dirs``: folders of JPEG images; each folder's name is the group
    (source video) of its images. Returns the validation summary (also
    written as validation.json). Raises InputError for the first bad file
    when ``on_error`` is "stop", and when no annotation is usable at all.
    Memory holds the file lists and the problems found, nothing per used
    file: the image table is streamed to disk.
    """
    classes = _checked_classes(classes, classes_from)
    output_dir = Path(output_dir)
    listing = _listing(annotations_dir, labelimg_command)
    images = index_images(image_dirs)
    out_dirs = _prepare_output(output_dir, [annotations_dir, *image_dirs])
    ids = {file: annotation_image_id(file.name, images) for file in listing.files}
    table = output_dir / "images.partial.csv"
    try:
        records, boxes, used, negatives = _intake(
            listing, ids, images, table, out_dirs, accepted=None if classes_from == "annotations" else list(classes),
            boxes_outside=boxes_outside, on_error=on_error)
    except InputError:
        table.unlink()
        raise
    records.extend(missing_annotations(selections, set(ids.values()), annotations_dir, labelimg_command))
    names = sorted(boxes) if classes_from == "annotations" else list(classes)
    class_ids = {name: label for label, name in enumerate(names)}
    summary = {
        "annotations_dir": str(annotations_dir),
        "image_dirs": [str(directory) for directory in image_dirs],
        "settings": {"on_error": on_error, "boxes_outside": boxes_outside, "classes_from": classes_from},
        "classes": class_ids,
        "annotation_files": len(listing.files),
        "used": used,
        "skipped": len(listing.files) - used,
        "negatives": negatives,
        "boxes": {name: boxes[name] for name in class_ids},
        "not_yet_labelled": sum(1 for record in records if record["code"] == "annotation_missing"),
        "notes": _notes(class_ids, boxes, used, listing),
        "ignored": [{"file": where, "reason": reason} for where, reason in listing.ignored],
        "problems": records,
    }
    _write_outputs(output_dir, table, class_ids, summary)
    if not used:
        first = next(record for record in records if record["severity"] == ERROR)
        raise InputError(annotations_dir, f"none of the {len(listing.files)} annotation files is usable, e.g. "
                                          f"{first['file']}: {_describe(first)} (all problems: {output_dir / 'validation.txt'})")
    return summary


def _write_outputs(output_dir, table, class_ids, summary):
    """classes.json, images.csv (the streamed table with a column per class), validation.json and .txt."""
    write_classes(VocTree(output_dir).classes_file, class_ids)
    with open(table, newline="") as source, open(output_dir / "images.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["image_id", "group", "width", "height", "boxes", *(f"boxes_{name}" for name in class_ids),
                         "source_image", "source_annotation"])
        for image_id, group, width, height, counts, image, annotation in csv.reader(source):
            counts = json.loads(counts)
            writer.writerow([image_id, group, width, height, sum(counts.values()),
                             *(counts.get(name, 0) for name in class_ids), image, annotation])
    table.unlink()
    (output_dir / "validation.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    (output_dir / "validation.txt").write_text(readable_report(summary))


def readable_report(summary):
    """validation.json as a text a person reads: counts, then one line per problem."""
    settings = summary["settings"]
    lines = [
        f"Annotations in {summary['annotations_dir']}: {summary['annotation_files']} files, "
        f"{summary['used']} used ({summary['negatives']} without boxes, kept as negatives), "
        f"{summary['skipped']} skipped, {summary['not_yet_labelled']} chosen frames not labelled yet.",
        "Classes (label ids): " + ", ".join(f"{name}={label}" for name, label in summary["classes"].items()),
        "Boxes per class: " + ", ".join(f"{name} {count}" for name, count in summary["boxes"].items()),
        f"Bad files are {'skipped' if settings['on_error'] == 'skip' else 'fatal'} (dataset.on_error: "
        f"{settings['on_error']}); boxes partly outside the image are {BOX_POLICY[settings['boxes_outside']]} "
        f"(dataset.boxes_outside: {settings['boxes_outside']}).",
        *(f"Note: {note}" for note in summary["notes"]),
        "",
    ]
    problems = summary["problems"]
    if not problems:
        return "\n".join(lines + ["No problems found.", ""])
    lines.append("file\tobject\tproblem")
    for record in problems:
        action = " (file skipped)" if record["severity"] == ERROR else ""
        lines.append(f"{record['file']}\t{record['object'] or '-'}\t{record['severity']}: {record['message']}{action}")
        if "fix" in record:
            lines.append(f"\t\tto fix: {record['fix']}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("annotations", help="folder of Pascal VOC XML files, or a tool's .zip export (only read)")
    parser.add_argument("output", help="folder of the VOC tree to write (e.g. results/voc)")
    parser.add_argument("--images", nargs="+", required=True, help="folders of JPEG images; a folder's name is its images' group")
    parser.add_argument("--selections", nargs="*", default=[], help="CSV files of frames chosen for labelling (column file)")
    parser.add_argument("--labelimg-command-file", type=Path,
                        help="file holding the labelImg command (results/labelling/labelimg.txt) to suggest for unlabelled frames")
    parser.add_argument("--classes", required=True, help="class names, comma-separated, in label-id order")
    parser.add_argument("--classes-from", choices=("config", "annotations"), required=True)
    parser.add_argument("--on-error", choices=("skip", "stop"), required=True)
    parser.add_argument("--boxes-outside", choices=("clip", "reject"), required=True)
    args = parser.parse_args(argv)
    classes = [name for name in args.classes.split(",") if name]
    if args.classes_from == "config" and not classes:
        raise InputError("classes", "no classes given (--classes grab,drop or --classes-from annotations)")
    try:
        command = args.labelimg_command_file.read_text().strip() if args.labelimg_command_file else None
    except OSError as error:
        raise InputError(args.labelimg_command_file, f"cannot be read: {error.strerror}")
    summary = build_dataset(args.annotations, args.images, args.output, classes=classes, classes_from=args.classes_from,
                            on_error=args.on_error, boxes_outside=args.boxes_outside, selections=args.selections,
                            labelimg_command=command)
    log.info("%d of %d annotation files used (%d negatives), %d skipped; boxes %s; report %s",
             summary["used"], summary["annotation_files"], summary["negatives"], summary["skipped"],
             summary["boxes"], Path(args.output) / "validation.txt")


if __name__ == "__main__":
    run(main)

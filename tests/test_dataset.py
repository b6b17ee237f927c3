"""Annotation intake and validation: every bad input of issue 3 (points 2 and 8)
gets its reason, the plums data from someone else's machine goes through
cleanly, and the inputs are never changed. Other tools' exports and zips:
tests/test_annotation_sources.py."""
import csv
import hashlib
import json
import os
import subprocess
import sys
import zipfile

import pytest
from lxml import etree

from detflow.dataset import build_dataset
from detflow.lib.cli import InputError
from detflow.lib.data.pascal_voc import read_annotation
from helpers.config import DATASET, config_options
from helpers.media import file_hashes, noise_frames, write_image, write_video
from helpers.voc import annotate, extract_plums, labelled_videos

CLASSES = ["grab", "drop", "lâcher"]
SIZE = (96, 72)  # width, height of the zoo's images: its boxes (partly_out, all_out, ...) are placed for it
WIDTH, HEIGHT = SIZE
LABELIMG = "labelImg results/labelling/images results/labelling/classes.txt annotations"


def voc(filename, objects="", size=f"<size><width>{WIDTH}</width><height>{HEIGHT}</height><depth>3</depth></size>",
        path="/home/someone/frames/x.jpg"):
    return (f"<annotation><folder>frames</folder><filename>{filename}</filename><path>{path}</path>"
            f"<source><database>Unknown</database></source>{size}<segmented>0</segmented>{objects}</annotation>")


def obj(name="grab", xmin=10, ymin=10, xmax=40, ymax=30, flags="<truncated>0</truncated><difficult>0</difficult>"):
    return (f"<object><name>{name}</name><pose>Unspecified</pose>{flags}<bndbox><xmin>{xmin}</xmin>"
            f"<ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>")


BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE annotation [<!ENTITY a "aaaaaaaaaa">'
                  + "".join(f'<!ENTITY a{i} "{("&a" + str(i - 1) + ";") * 10 if i > 1 else "&a;" * 10}">' for i in range(1, 10))
                  + ']><annotation><filename>&a9;</filename></annotation>')

# name of the XML file -> (content, {(problem code, object index, severity)})
ZOO = {
    "good": (voc("good.jpg", obj() + obj("drop", 50, 20, 90, 70)), set()),
    "negative": (voc("negative.jpg"), set()),
    "truncated": (voc("truncated.jpg", obj())[:-20], {("not_well_formed", None, "error")}),
    "laughs": (BILLION_LAUGHS, {("doctype", None, "error")}),
    "external": ('<!DOCTYPE annotation [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                 + voc("external.jpg", obj("&e;")), {("doctype", None, "error")}),
    "no_size": (voc("no_size.jpg", obj(), size=""), {("size_missing", None, "error")}),
    "other_size": (voc("other_size.jpg", obj(), size="<size><width>640</width><height>480</height><depth>3</depth></size>"),
                   {("size_mismatch", None, "error")}),
    "ghost": (voc("ghost.jpg", obj()), {("image_missing", None, "error")}),
    "unknown": (voc("unknown.jpg", obj() + obj("wave")), {("unknown_class", 2, "error")}),
    "floats": (voc("floats.jpg", obj(xmin="21.0", ymax="29.6")),
               {("coordinate_not_integer", 1, "warning")}),
    "text_coord": (voc("text_coord.jpg", obj(xmax="forty")), {("coordinate_invalid", 1, "error")}),
    "inverted": (voc("inverted.jpg", obj(xmin=40, xmax=10)), {("box_inverted", 1, "error")}),
    "zero_area": (voc("zero_area.jpg", obj() + obj(ymin=30, ymax=30)), {("box_empty", 2, "error")}),
    "partly_out": (voc("partly_out.jpg", obj(xmin=0, xmax=200)), {("box_outside", 1, "warning")}),
    "all_out": (voc("all_out.jpg", obj(xmin=150, xmax=200)), {("box_outside", 1, "error")}),
    "no_flags": (voc("no_flags.jpg", obj(flags="")), {("truncated_missing", 1, "warning"), ("difficult_missing", 1, "warning")}),
    "moved": (voc("renamed_by_hand.jpg", obj(), path="/tmp/elsewhere/good.jpg"), {("filename_mismatch", None, "warning")}),
    "twin": (voc("twin.jpg", obj()), {("duplicate_image_id", None, "error")}),
    "dup one": (voc("dup one.jpg", obj()), {("duplicate_image_id", None, "error")}),
    "dup_one": (voc("dup_one.jpg", obj()), {("duplicate_image_id", None, "error")}),
    "broken": (voc("broken.jpg", obj()), {("image_unreadable", None, "error")}),
}
# "dup_one" is only bad next to "dup one", which comes first by name.
ERROR_CASES = sorted(name for name, (_, expected) in ZOO.items() if any(s == "error" for *_, s in expected) and name != "dup_one")


def write_zoo(root, names=tuple(ZOO)):
    """Images in root/frames/clip, annotations in root/annotations; returns (annotations dir, frames dir)."""
    frames, annotations = root / "frames" / "clip", root / "annotations"
    annotations.mkdir(parents=True)
    for number, name in enumerate(names):
        content = ZOO[name][0]
        (annotations / f"{name}.xml").write_text(content, encoding="utf-8")
        image_id = name.replace(" ", "_")
        if name not in ("ghost", "broken"):
            write_image(frames / f"{image_id}.jpg", SIZE, seed=number)
    if "twin" in names:
        write_image(frames / "twin.jpeg", SIZE, seed=99)
    if "broken" in names:
        (frames / "broken.jpg").write_bytes(b"this is not a JPEG")
    if "good" not in names:
        write_image(frames / "good.jpg", SIZE)
    frames.mkdir(parents=True, exist_ok=True)
    return annotations, frames


def checksums(*folders):
    return {path: hashlib.sha256(path.read_bytes()).hexdigest() for folder in folders for path in sorted(folder.rglob("*"))
            if path.is_file()}


def problems_by_file(summary):
    found = {}
    for record in summary["problems"]:
        name = os.path.basename(record["file"])[: -len(".xml")]
        found.setdefault(name, set()).add((record["code"], record["object"], record["severity"]))
    return found


def test_every_problem_is_reported_per_file_and_bad_files_are_skipped(tmp_path):
    annotations, frames = write_zoo(tmp_path)
    selection = tmp_path / "selected.csv"
    selection.write_text("frame_index,timestamp_s,file\n0,0.0,good.jpg\n7,1.4,clip_000007.jpg\n")
    before = checksums(annotations, frames)
    summary = build_dataset(annotations, [frames], tmp_path / "voc", classes=CLASSES, selections=[selection],
                            labelimg_command=LABELIMG, **DATASET)
    assert checksums(annotations, frames) == before  # inputs untouched
    found = problems_by_file(summary)
    for name, (_, expected) in ZOO.items():
        assert found.get(name, set()) == expected, name
    assert found["clip_000007"] == {("annotation_missing", None, "warning")}
    missing = next(r for r in summary["problems"] if r["code"] == "annotation_missing")
    assert missing["fix"] == LABELIMG and missing["file"] == str(annotations / "clip_000007.xml")

    used = {row["image_id"] for row in csv.DictReader(open(tmp_path / "voc" / "images.csv"))}
    usable = {name.replace(" ", "_") for name, (_, expected) in ZOO.items() if not any(s == "error" for *_, s in expected)}
    assert used == usable == {"good", "negative", "floats", "partly_out", "no_flags", "moved"}
    assert summary["used"] == 6 and summary["skipped"] == len(ZOO) - 6 and summary["negatives"] == 1
    assert summary["not_yet_labelled"] == 1
    assert sorted(p.name for p in (tmp_path / "voc" / "JPEGImages").iterdir()) == sorted(f"{i}.jpg" for i in used)
    assert sorted(p.name for p in (tmp_path / "voc" / "Annotations").iterdir()) == sorted(f"{i}.xml" for i in used)

    # the readable list: one line per problem, with file, object index and reason
    text = (tmp_path / "voc" / "validation.txt").read_text()
    assert "file\tobject\tproblem" in text
    assert f"{annotations / 'unknown.xml'}\t2\terror: class 'wave' is not among the classes grab, drop, lâcher (file skipped)" in text
    assert f"{annotations / 'laughs.xml'}\t-\terror: contains a DOCTYPE" in text
    assert f"to fix: {LABELIMG}" in text
    assert json.loads((tmp_path / "voc" / "validation.json").read_text()) == summary


def test_fixes_are_written_into_normalised_annotations(tmp_path):
    annotations, frames = write_zoo(tmp_path)
    build_dataset(annotations, [frames], tmp_path / "voc", classes=CLASSES, **DATASET)
    normalised = tmp_path / "voc" / "Annotations"
    assert read_annotation(normalised / "floats.xml").objects[0].box == (21, 10, 40, 30)
    assert read_annotation(normalised / "partly_out.xml").objects[0].box == (1, 10, WIDTH, 30)
    no_flags = etree.parse(str(normalised / "no_flags.xml")).getroot().find("object")
    assert (no_flags.findtext("truncated"), no_flags.findtext("difficult")) == ("0", "0")
    for path in normalised.iterdir():  # labelImg's absolute <path> is never carried over
        root = etree.parse(str(path)).getroot()
        assert root.find("path") is None
        assert root.findtext("filename") == f"{path.stem}.jpg" and root.findtext("folder") == "JPEGImages"
        assert read_annotation(path).problems == []
    moved = tmp_path / "voc" / "JPEGImages" / "moved.jpg"
    assert moved.read_bytes() == (frames / "moved.jpg").read_bytes()


def test_reject_turns_boxes_outside_into_errors(tmp_path):
    annotations, frames = write_zoo(tmp_path, ("good", "partly_out"))
    summary = build_dataset(annotations, [frames], tmp_path / "voc", classes=CLASSES, boxes_outside="reject",
                            classes_from=DATASET["classes_from"], on_error=DATASET["on_error"])
    assert problems_by_file(summary) == {"partly_out": {("box_outside", 1, "error")}}
    assert summary["used"] == 1


@pytest.mark.parametrize("name", ERROR_CASES)
def test_stop_names_the_first_bad_file_and_its_reason(tmp_path, name):
    names = ("good", name, "dup_one") if name == "dup one" else ("good", name)
    annotations, frames = write_zoo(tmp_path, names)
    with pytest.raises(InputError) as raised:
        build_dataset(annotations, [frames], tmp_path / "voc", classes=CLASSES, on_error="stop",
                      classes_from=DATASET["classes_from"], boxes_outside=DATASET["boxes_outside"])
    assert raised.value.where == str(annotations / f"{name}.xml")
    expected_code = next(iter(ZOO[name][1]))[0]
    summary_reason = {
        "not_well_formed": "not well-formed", "doctype": "DOCTYPE", "size_missing": "<size> is missing",
        "size_mismatch": "says 640x480 but the image", "image_missing": "no image named", "unknown_class": "class 'wave'",
        "coordinate_invalid": "'forty', not a number", "box_inverted": "inverted", "box_empty": "zero area",
        "box_outside": "outside", "duplicate_image_id": "image id", "image_unreadable": "cannot be read",
    }[expected_code]
    assert summary_reason in raised.value.reason
    if next(iter(ZOO[name][1]))[1] is not None:
        assert raised.value.reason.startswith(f"object {next(iter(ZOO[name][1]))[1]}: ")


def test_bom_and_non_utf8_declarations_are_read_correctly(tmp_path):
    annotations, frames = write_zoo(tmp_path, ("good",))
    write_image(frames / "bom.jpg", SIZE, seed=5)
    write_image(frames / "latin1.jpg", SIZE, seed=6)
    (annotations / "bom.xml").write_bytes(b"\xef\xbb\xbf" + voc("bom.jpg", obj("lâcher")).encode("utf-8"))
    (annotations / "latin1.xml").write_bytes(
        ('<?xml version="1.0" encoding="ISO-8859-1"?>' + voc("latin1.jpg", obj("lâcher"))).encode("latin-1"))
    summary = build_dataset(annotations, [frames], tmp_path / "voc", classes=CLASSES, on_error="stop",
                            classes_from=DATASET["classes_from"], boxes_outside=DATASET["boxes_outside"])
    assert summary["problems"] == [] and summary["boxes"] == {"grab": 1, "drop": 1, "lâcher": 2}
    written = (tmp_path / "voc" / "Annotations" / "latin1.xml").read_bytes()
    assert "<name>lâcher</name>".encode("utf-8") in written  # normalised to UTF-8


def test_a_lying_encoding_declaration_is_not_well_formed(tmp_path):
    annotations, frames = write_zoo(tmp_path, ("good",))
    write_image(frames / "liar.jpg", SIZE)
    (annotations / "liar.xml").write_bytes(('<?xml version="1.0" encoding="UTF-8"?>' + voc("liar.jpg", obj("lâcher"))).encode("latin-1"))
    summary = build_dataset(annotations, [frames], tmp_path / "voc", classes=CLASSES, **DATASET)
    assert problems_by_file(summary) == {"liar": {("not_well_formed", None, "error")}}


def test_empty_annotations_folder(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "notes.txt").write_text("not an annotation")
    write_image(tmp_path / "frames" / "a.jpg", SIZE)
    with pytest.raises(InputError, match="no annotation files") as raised:
        build_dataset(tmp_path / "annotations", [tmp_path / "frames"], tmp_path / "voc", classes=CLASSES,
                      labelimg_command=LABELIMG, **DATASET)
    assert raised.value.where == str(tmp_path / "annotations") and LABELIMG in raised.value.reason


def test_no_usable_file_at_all_is_an_error_with_the_first_reason(tmp_path):
    annotations, frames = write_zoo(tmp_path, ("ghost", "inverted"))
    (annotations / "good.xml").unlink(missing_ok=True)
    with pytest.raises(InputError, match="none of the 2 annotation files is usable"):
        build_dataset(annotations, [frames], tmp_path / "voc", classes=CLASSES, **DATASET)
    assert "ghost.xml" in (tmp_path / "voc" / "validation.txt").read_text()


def test_duplicate_classes_are_refused_by_name(tmp_path):
    annotations, frames = write_zoo(tmp_path, ("good",))
    with pytest.raises(InputError, match="'grab' is listed more than once"):
        build_dataset(annotations, [frames], tmp_path / "voc", classes=["grab", "drop", "grab"], **DATASET)


def test_duplicate_classes_in_config_stop_the_workflow_clearly(workflow_copy):
    workflow_copy.set_config(classes=["grab", "drop", "grab"])
    result = workflow_copy.snakemake("-n", check=False)
    assert result.returncode != 0
    assert "invalid configuration: config: classes: ['grab', 'drop', 'grab'] has non-unique elements" in result.stdout
    assert "Traceback" not in result.stdout


def test_classes_from_annotations_are_sorted_names(tmp_path):
    annotations, frames = write_zoo(tmp_path, ("good", "unknown"))
    summary = build_dataset(annotations, [frames], tmp_path / "voc", classes=[], classes_from="annotations",
                            on_error=DATASET["on_error"], boxes_outside=DATASET["boxes_outside"])
    assert summary["classes"] == {"drop": 0, "grab": 1, "wave": 2}
    assert json.loads((tmp_path / "voc" / "classes.json").read_text()) == {"drop": 0, "grab": 1, "wave": 2}
    assert summary["problems"] == []


def test_output_may_not_overlap_an_input_folder(tmp_path):
    annotations, frames = write_zoo(tmp_path, ("good",))
    tree = tmp_path / "tree"  # a VOC tree of the person's own, as input
    tree.mkdir()
    annotations, frames = annotations.rename(tree / "Annotations"), frames.rename(tree / "JPEGImages")
    for output in (tree, annotations):
        with pytest.raises(InputError, match="overlaps the output"):
            build_dataset(annotations, [frames], output, classes=CLASSES, **DATASET)
    assert (frames / "good.jpg").exists() and (annotations / "good.xml").exists()


def test_groups_sizes_and_box_counts_per_image(tmp_path):
    annotations, frame_dirs = labelled_videos(tmp_path, ["cam_a", "cam_b", "cam_c"], frames=3, size=SIZE)
    summary = build_dataset(annotations, frame_dirs, tmp_path / "voc", classes=["grab", "drop"], on_error="stop",
                            classes_from=DATASET["classes_from"], boxes_outside=DATASET["boxes_outside"])
    rows = list(csv.DictReader(open(tmp_path / "voc" / "images.csv")))
    assert [row["image_id"] for row in rows] == [f"cam_{v}_{i:06d}" for v in "abc" for i in range(3)]
    assert {row["group"] for row in rows} == {"cam_a", "cam_b", "cam_c"}
    assert all((row["width"], row["height"]) == (str(WIDTH), str(HEIGHT)) for row in rows)
    cam_b_last = next(row for row in rows if row["image_id"] == "cam_b_000002")
    assert (cam_b_last["boxes"], cam_b_last["boxes_grab"], cam_b_last["boxes_drop"]) == ("2", "1", "1")
    assert summary["negatives"] == 3 and summary["boxes"] == {"grab": 5, "drop": 4}
    linked = tmp_path / "voc" / "JPEGImages" / "cam_a_000001.jpg"
    assert linked.read_bytes() == (tmp_path / "frames" / "cam_a" / "cam_a_000001.jpg").read_bytes()


def test_plums_from_someone_elses_machine_go_through_cleanly(plums, tmp_path):
    tree = extract_plums(plums, tmp_path / "plums")
    before = checksums(tree)
    summary = build_dataset(tree / "Annotations", [tree / "JPEGImages"], tmp_path / "voc",
                            classes=["redPlum",
                                     "greenPlum"], on_error="stop", boxes_outside="reject", classes_from=DATASET["classes_from"])
    assert checksums(tree) == before
    assert summary["problems"] == []
    assert (summary["used"], summary["boxes"]) == (15, {"redPlum": 132, "greenPlum": 2})
    for path in (tmp_path / "voc" / "Annotations").iterdir():
        assert b"/home/jasper" not in path.read_bytes()


def test_cli_reports_one_line_without_traceback(tmp_path):
    annotations, frames = write_zoo(tmp_path, ("good", "ghost"))
    command = [sys.executable, "-m", "detflow.dataset", str(annotations), str(tmp_path / "voc"), "--images", str(frames),
               "--classes", "grab,drop", *config_options("dataset", "classes_from", "boxes_outside"), "--on-error", "stop"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"error: {annotations / 'ghost.xml'}: no image named ghost.jpg" in result.stderr
    ok = subprocess.run(command[:-1] + ["skip"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "skipped" in ok.stderr and (tmp_path / "voc" / "validation.txt").exists()


def test_rerun_only_what_changed(workflow_copy, tmp_path):
    """Issue 3, point 7, on a person's own videos and labelImg folder: editing one
    XML reruns the dataset and splits, not frame extraction; a new split seed
    reruns the splits only."""
    videos, annotations = tmp_path / "videos", tmp_path / "labels"
    write_video(videos / "cam one.avi", noise_frames(8, seed=1), fps=5)
    write_video(videos / "cam2.avi", noise_frames(8, seed=2), fps=5)
    annotations.mkdir()
    workflow_copy.set_config(videos={"dir": str(videos)}, annotations={"dir": str(annotations)},
                       frames={"every_nth": 2, "skip_duplicates": False}, labelling={"frames_per_video": 3})
    workflow_copy.snakemake("labelling")
    selected = sorted(row["file"][: -len(".jpg")] for selection in (workflow_copy.root / "results/labelling/selected").glob("*.csv")
                      for row in csv.DictReader(open(selection)))
    assert len(selected) == 6
    for number, image_id in enumerate(selected[:-1]):  # the person has not labelled the last chosen frame yet
        annotate(annotations, image_id, ["grab"] if number % 2 else ["drop", "grab"], size=(160, 120))
    workflow_copy.snakemake("results/voc/splits.json")
    report = json.loads((workflow_copy.root / "results/voc/validation.json").read_text())
    assert report["used"] == 5 and report["not_yet_labelled"] == 1
    command = (workflow_copy.root / "results/labelling/labelimg.txt").read_text().strip()
    assert command.startswith("detflow label ") and [r["fix"] for r in report["problems"]] == [command]
    assert workflow_copy.dry_run_jobs("results/voc/splits.json") == {}

    edited = annotations / f"{selected[0]}.xml"
    text = edited.read_text()
    assert "<xmin>1</xmin>" in text
    edited.write_text(text.replace("<xmin>1</xmin>", "<xmin>3</xmin>", 1))
    assert workflow_copy.dry_run_jobs("results/voc/splits.json") == {"dataset": 1, "splits": 1}
    annotate(annotations, selected[-1], ["grab"], size=(160, 120))  # a new file: also a rerun
    assert workflow_copy.dry_run_jobs("results/voc/splits.json") == {"dataset": 1, "splits": 1}
    workflow_copy.snakemake("results/voc/splits.json")
    assert json.loads((workflow_copy.root / "results/voc/validation.json").read_text())["used"] == 6

    workflow_copy.set_config(split={"seed": 4})
    assert workflow_copy.dry_run_jobs("results/voc/splits.json") == {"splits": 1}
    workflow_copy.set_config(dataset={"boxes_outside": "reject"})
    assert workflow_copy.dry_run_jobs("results/voc/splits.json") == {"dataset": 1, "splits": 1}
    assert all(not (annotations / name).exists() for name in ("JPEGImages", "Annotations"))
    assert sorted(p.suffix for p in annotations.iterdir()) == [".xml"] * 6  # the person's folder only holds their files


def test_macos_appledouble_files_are_ignored_not_taken_for_duplicates(tmp_path):
    """Issue 12: ``._good.xml`` (macOS's AppleDouble file, copied from a Mac's USB stick) once had the id
    ``good`` too, and both files were dropped as duplicates."""
    annotations, frames = write_zoo(tmp_path, ("good",))
    (annotations / "._good.xml").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    (annotations / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    before = file_hashes(annotations)
    summary = build_dataset(annotations, [frames], tmp_path / "voc", classes=CLASSES, on_error="stop",
                            classes_from=DATASET["classes_from"], boxes_outside=DATASET["boxes_outside"])
    assert file_hashes(annotations) == before
    assert summary["problems"] == [] and summary["used"] == summary["annotation_files"] == 1
    assert [item["file"] for item in summary["ignored"]] == [str(annotations / ".DS_Store"), str(annotations / "._good.xml")]
    assert "macOS metadata (an AppleDouble file)" in summary["ignored"][1]["reason"]
    text = (tmp_path / "voc" / "validation.txt").read_text()
    assert "Note: 2 entries of the annotations were ignored (.DS_Store, ._good.xml)" in text


def test_class_names_are_compared_after_nfc_normalisation(tmp_path):
    decomposed, composed = "la\u0302cher", "l\u00e2cher"
    annotations, frames = write_zoo(tmp_path, ("good",))
    write_image(frames / "nfd.jpg", SIZE, seed=3)
    (annotations / "nfd.xml").write_text(voc("nfd.jpg", obj(decomposed)), encoding="utf-8")
    summary = build_dataset(annotations, [frames], tmp_path / "voc", classes=["grab", "drop", composed],
                            on_error="stop", classes_from=DATASET["classes_from"], boxes_outside=DATASET["boxes_outside"])
    assert summary["problems"] == [] and summary["boxes"] == {"grab": 1, "drop": 1, composed: 1}
    assert f"<name>{composed}</name>".encode() in (tmp_path / "voc" / "Annotations" / "nfd.xml").read_bytes()
    again = build_dataset(annotations, [frames], tmp_path / "voc2", classes=["grab", "drop", decomposed], **DATASET)
    assert again["classes"] == {"grab": 0, "drop": 1, composed: 2} and again["boxes"][composed] == 1
    with pytest.raises(InputError, match="listed more than once"):
        build_dataset(annotations, [frames], tmp_path / "voc3", classes=["grab", composed, decomposed], **DATASET)


def test_a_zip_export_as_annotations_dir_reruns_when_replaced(workflow_copy, tmp_path):
    """annotations.dir may be a tool's .zip export: the zip itself is the dataset's input (replacing it
    reruns the dataset), it is read in place and nothing is written into it or beside it."""
    videos, export = tmp_path / "videos", tmp_path / "export"
    write_video(videos / "cam.avi", noise_frames(8, seed=1), fps=5)
    export.mkdir()
    source = export / "project-1-at-2026-12-01.zip"
    workflow_copy.set_config(videos={"dir": str(videos)}, annotations={"dir": str(source)},
                             frames={"every_nth": 2, "skip_duplicates": False}, labelling={"frames_per_video": 3})
    workflow_copy.snakemake("labelling")
    selected = sorted(row["file"][: -len(".jpg")] for row in
                      csv.DictReader(open(workflow_copy.root / "results/labelling/selected/cam.csv")))
    labels = tmp_path / "unpacked" / "Annotations"
    for image_id in selected:
        annotate(labels, image_id, ["grab"], size=(160, 120))

    def export_zip():
        with zipfile.ZipFile(source, "w") as archive:
            for path in sorted(labels.iterdir()):
                archive.write(path, f"Annotations/{path.name}")

    export_zip()
    before = file_hashes(export)
    workflow_copy.snakemake("results/voc/validation.json")
    report = json.loads((workflow_copy.root / "results/voc/validation.json").read_text())
    assert report["used"] == 3 and report["annotations_dir"] == str(source)
    assert file_hashes(export) == before  # the zip alone, unchanged
    assert workflow_copy.dry_run_jobs("results/voc/validation.json") == {}
    annotate(labels, selected[0], ["grab", "drop"], size=(160, 120))
    export_zip()
    assert workflow_copy.dry_run_jobs("results/voc/validation.json") == {"dataset": 1}

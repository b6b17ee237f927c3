"""Annotations from other labelling tools, as folders and as .zip exports read in
place: AnyLabeling, CVAT and Label Studio files go through the dataset stage,
zips are read safely and never changed, and file names map to image ids
(Label Studio's upload prefix included).

Where each fixture under tests/data/ comes from (each made by the tool's own
code, not written by hand; the frames they label are written by the tests):

- ``anylabeling/``: AnyLabeling 0.4.43 (PyPI), its own Pascal VOC export
  (``ExportWorker("pascal_voc", ...)``, what Tools > Export runs) of
  labelme-style JSON files as AnyLabeling saves them (a rectangle is its two
  corners, floats; one drawn from the bottom right; one polygon; one image
  with no shape), exported from ``/tmp/anylabeling/labelling/images``: an
  XML declaration, two-space indent, the absolute ``<folder>`` and ``<path>``,
  coordinates truncated with ``int()``.
- ``cvat/``: the Pascal VOC exporter of cvat-ai/datumaro (the fork CVAT
  bundles, commit 8970bb7b), called as CVAT's "PASCAL VOC 1.1" exporter calls
  it (``cvat/apps/dataset_manager/formats/pascal_voc.py``:
  ``dataset.export(dir, 'voc', save_images=False, label_map='source')``), on
  items shaped as CVAT's binding shapes them (``occluded``, ``rotation`` and a
  user attribute ``hand`` per box; an image without boxes; an image uploaded
  inside folders, whence ``Annotations/frames/demo_01/...``). Its
  ``labelmap.txt`` and ``ImageSets/`` are the exporter's too. The tests zip it
  as CVAT's ``make_zip_archive`` does (the files, stored, no folder entries).
  ``<depth>`` is empty and every coordinate a decimal, as CVAT writes them.
- ``datumaro_part/``: the same exporter with a label map giving ``grab`` a
  part ``hand`` (CVAT itself passes ``label_map='source'``, which has no parts):
  the only way a ``<part>`` with its own ``<bndbox>`` appears in an object.
- ``label_studio/``: label-studio-sdk 2.1.2's ``Converter.convert_to_voc``
  (what Label Studio's "Pascal VOC XML" export runs) on a Label Studio JSON
  export of three uploaded frames; Label Studio names an upload
  ``str(uuid.uuid4())[0:8] + '-' + name``, so the files and their
  ``<filename>`` carry that prefix. The third task has no box: the converter
  writes no file for it. The tests zip it as Label Studio's exporter does
  (``shutil.make_archive`` of the converter's output, images included).
- ``label_studio_voc/``: the "Pascal VOC XML" export of a real Label Studio
  1.23.2 server (tests/test_label_studio.py's project): a frame it serves from
  the project folder (``30bafa86__clip_000002.xml``: ``md5(url)[:8]`` and two
  underscores) and an uploaded one (``uploaded/26c080f2-clip_000008.xml``).
"""
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from detflow.dataset import build_dataset
from detflow.lib.cli import InputError
from detflow.lib.data.annotation_sources import image_id, labelled_image_ids, list_annotations, read_annotations
from detflow.lib.data.pascal_voc import read_annotation
from helpers.config import DATASET, config_options
from helpers.media import file_hashes, write_image

DATA = Path(__file__).resolve().parent / "data"
CLASSES = ["grab", "drop", "lâcher"]
SIZE = (96, 72)  # width, height of the frames the exports in tests/data/ label (their <size>)


def frames(root, *image_ids):
    """A JPEG per id in root/frames/<video>/ (the video is the id without its frame number); the folders."""
    for number, name in enumerate(image_ids):
        write_image(root / "frames" / name.rsplit("_", 1)[0] / f"{name}.jpg", SIZE, seed=number)
    return sorted((root / "frames").iterdir())


def cvat_zip(target, tree=DATA / "cvat"):
    """The export zipped as CVAT's make_zip_archive zips it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w") as archive:
        for folder, _, names in os.walk(tree):
            for name in names:
                path = os.path.join(folder, name)
                archive.write(path, os.path.relpath(path, tree))
    return target


def label_studio_zip(target):
    """The export zipped as Label Studio packs it: the converter's Annotations/ and images/ folders."""
    output = target.parent / "converter_output"
    shutil.copytree(DATA / "label_studio", output)
    for name in ("1a2b3c4d-demo_00_000010", "9f8e7d6c-deadbeef-take_000004", "0c1d2e3f-demo_00_000012"):
        write_image(output / "images" / f"{name}.jpg", SIZE, seed=7)
    archive = shutil.make_archive(str(target.with_suffix("")), "zip", output)
    shutil.rmtree(output)
    return Path(archive)


def problems_by_file(summary):
    found = {}
    for record in summary["problems"]:
        found.setdefault(record["file"], set()).add((record["code"], record["object"], record["severity"]))
    return found


def boxes_written(voc, image_id):
    return [(item.name, item.box) for item in read_annotation(voc / "Annotations" / f"{image_id}.xml").objects]


def test_anylabeling_export_folder(tmp_path):
    export = tmp_path / "export"  # AnyLabeling writes the XML files and copies the images side by side
    shutil.copytree(DATA / "anylabeling", export)
    for name in ("demo_00_000010", "demo_00_000012", "demo_01_000004"):
        write_image(export / f"{name}.jpg", SIZE, seed=3)
    frame_dirs = frames(tmp_path, "demo_00_000010", "demo_00_000012", "demo_01_000004")
    before = file_hashes(export)
    summary = build_dataset(export, frame_dirs, tmp_path / "voc", classes=CLASSES, **DATASET)
    assert file_hashes(export) == before
    assert (summary["used"], summary["negatives"], summary["boxes"]) == (3, 1, {"grab": 2, "drop": 2, "lâcher": 0})
    # its boxes are 0-based and truncated: one touching the corner reaches outside VOC's 1-based frame
    assert problems_by_file(summary) == {str(export / "demo_01_000004.xml"): {("box_outside", 1, "warning")}}
    voc = tmp_path / "voc"
    assert boxes_written(voc, "demo_00_000010") == [("grab", (10, 12, 40, 32)), ("drop", (50, 20, 85, 60))]
    assert boxes_written(voc, "demo_01_000004") == [("grab", (1, 1, 30, 25)), ("drop", (60, 10, 90, 50))]
    for path in (voc / "Annotations").iterdir():
        assert b"/tmp/anylabeling" not in path.read_bytes()


def cvat_expectations(where):
    """What the CVAT export gives, its files named by ``where(member)``."""
    nested = where("Annotations/frames/demo_01/demo_01_000004.xml")
    return {
        where("Annotations/demo_00_000010.xml"): {("coordinate_not_integer", None, "warning")},
        nested: {("coordinate_not_integer", None, "warning"), ("box_outside", 1, "warning")},
    }


@pytest.mark.parametrize("packed", [True, False], ids=["zip", "unpacked"])
def test_cvat_export_as_zip_or_unpacked_folder(tmp_path, packed):
    if packed:
        source = cvat_zip(tmp_path / "export" / "task_hands-2026_12_01-pascal voc 1.1.zip")
        where = lambda member: f"{source}/{member}"  # noqa: E731
    else:
        source = tmp_path / "export" / "unpacked"
        shutil.copytree(DATA / "cvat", source)
        where = lambda member: str(source / member)  # noqa: E731
    frame_dirs = frames(tmp_path, "demo_00_000010", "demo_00_000012", "demo_01_000004")
    before = file_hashes(tmp_path / "export")
    summary = build_dataset(source, frame_dirs, tmp_path / "voc", classes=CLASSES, on_error="stop",
                            classes_from=DATASET["classes_from"], boxes_outside=DATASET["boxes_outside"])
    assert file_hashes(tmp_path / "export") == before
    assert (summary["used"], summary["negatives"]) == (3, 1)
    assert summary["boxes"] == {"grab": 1, "drop": 1, "lâcher": 1}
    assert problems_by_file(summary) == cvat_expectations(where)
    # one note per file instead of a warning per coordinate (CVAT writes every coordinate as a decimal)
    note = next(r for r in summary["problems"] if r["file"] == where("Annotations/demo_00_000010.xml"))
    assert note["message"].startswith("all 8 box coordinates are decimal numbers") and "'10.5' to 10" in note["message"]
    voc = tmp_path / "voc"
    assert boxes_written(voc, "demo_00_000010") == [("grab", (10, 12, 40, 33)), ("drop", (51, 20, 86, 60))]
    assert boxes_written(voc, "demo_01_000004") == [("lâcher", (1, 1, 40, 30))]
    rows = (voc / "images.csv").read_text()
    assert where("Annotations/frames/demo_01/demo_01_000004.xml") in rows
    text = (voc / "validation.txt").read_text()
    assert text.count("decimal numbers") == 2 and "not an integer" not in text


def test_cvat_part_boxes_are_not_objects(tmp_path):
    frame_dirs = frames(tmp_path, "demo_01_000006")
    summary = build_dataset(DATA / "datumaro_part", frame_dirs, tmp_path / "voc", classes=CLASSES, on_error="stop",
                            classes_from=DATASET["classes_from"], boxes_outside=DATASET["boxes_outside"])
    assert summary["boxes"] == {"grab": 1, "drop": 0, "lâcher": 0}
    assert boxes_written(tmp_path / "voc", "demo_01_000006") == [("grab", (20, 11, 60, 41))]


def test_label_studio_export_zip_matches_frames_without_the_upload_prefix(tmp_path):
    source = label_studio_zip(tmp_path / "export" / "project-1-at-2026-12-01-10-00-4f3c2b1a.zip")
    frame_dirs = frames(tmp_path, "demo_00_000010", "deadbeef-take_000004", "demo_00_000012")
    selection = tmp_path / "selected.csv"
    selection.write_text("frame_index,timestamp_s,file\n10,1.0,demo_00_000010.jpg\n12,1.2,demo_00_000012.jpg\n")
    before = file_hashes(tmp_path / "export")
    summary = build_dataset(source, frame_dirs, tmp_path / "voc", classes=CLASSES, selections=[selection], **DATASET)
    assert file_hashes(tmp_path / "export") == before
    assert summary["used"] == 2 and summary["boxes"] == {"grab": 2, "drop": 1, "lâcher": 0}
    rows = {line.split(",")[0]: line for line in (tmp_path / "voc" / "images.csv").read_text().splitlines()[1:]}
    assert sorted(rows) == ["deadbeef-take_000004", "demo_00_000010"]
    assert str(tmp_path / "frames" / "demo_00" / "demo_00_000010.jpg") in rows["demo_00_000010"]  # not the zip's image
    # no <filename> warning: the prefixed <filename> names the same frame; the frame without boxes is not in the export
    assert problems_by_file(summary) == {
        f"{source}/Annotations/9f8e7d6c-deadbeef-take_000004.xml": {("box_outside", 1, "warning")},
        str(source): {("annotation_missing", None, "warning")},
    }
    missing = next(r for r in summary["problems"] if r["code"] == "annotation_missing")
    assert "demo_00_000012.jpg" in missing["message"] and "export again" in missing["fix"]
    assert "leaves out images without boxes" in missing["fix"]


def test_hash_prefix_rule():
    images = {"demo_00_000010", "deadbeef-take_000004", "take_000004"}
    assert image_id("1a2b3c4d-demo_00_000010.xml", images) == "demo_00_000010"
    assert image_id("1a2b3c4d-demo_00_000010.jpg", images) == "demo_00_000010"  # a <filename>
    # a frame whose own name starts like a prefix keeps its name; only one prefix is ever dropped
    assert image_id("deadbeef-take_000004.xml", images) == "deadbeef-take_000004"
    assert image_id("9f8e7d6c-deadbeef-take_000004.xml", images) == "deadbeef-take_000004"
    # dropped only when the rest of the name is an image: otherwise the name stays as it is, and is reported
    assert image_id("1a2b3c4d-demo_00_000099.xml", images) == "1a2b3c4d-demo_00_000099"
    assert image_id("deadbeef-take_000004.xml", {"take_000004"}) == "take_000004"
    # only Label Studio's form: 8 lower-case hex digits and a dash
    assert image_id("1A2B3C4D-demo_00_000010.xml", images) == "1A2B3C4D-demo_00_000010"
    assert image_id("1a2b3c4-demo_00_000010.xml", images) == "1a2b3c4-demo_00_000010"
    assert image_id("1a2b3c4d_demo_00_000010.xml", images) == "1a2b3c4d_demo_00_000010"
    # a file Label Studio serves from disk: part of its URL's MD5 and two underscores
    assert image_id("30bafa86__demo_00_000010.xml", images) == "demo_00_000010"
    assert image_id("1a2b3c4d-demo_00_000010.xml") == "1a2b3c4d-demo_00_000010"  # no images known: the own id
    assert image_id("my frame (2).xml") == "my_frame_2"  # the safe-name rule of video ids


def test_labelled_image_ids(tmp_path):
    assert labelled_image_ids(tmp_path / "not yet") == set()
    labels = tmp_path / "labels"
    labels.mkdir()
    for name in ("a.xml", "B.XML", "._a.xml", ".DS_Store", "notes.txt", "1a2b3c4d-c.xml"):
        (labels / name).write_text("<annotation/>")
    assert labelled_image_ids(labels) == {"a", "B", "1a2b3c4d-c", "c"}
    assert labelled_image_ids(labels, {"a", "B", "c"}) == {"a", "B", "c"}
    assert labelled_image_ids(labels, {"a", "B", "c", "1a2b3c4d-c"}) == {"a", "B", "1a2b3c4d-c"}
    source = label_studio_zip(tmp_path / "export.zip")
    assert labelled_image_ids(source, {"demo_00_000010", "deadbeef-take_000004"}) == {"demo_00_000010",
                                                                                        "deadbeef-take_000004"}
    assert labelled_image_ids(cvat_zip(tmp_path / "cvat.zip")) == {"demo_00_000010", "demo_00_000012", "demo_01_000004"}


def patch_encrypted(path, member):
    """Set the 'encrypted' flag of ``member`` in the zip's headers (Python's zipfile cannot write encryption)."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            name_at = start + (30 if signature == b"PK\x03\x04" else 46)
            if data[name_at:name_at + len(name)] == name:
                data[start + flags_at] |= 0x1
            start += 4
    path.write_bytes(bytes(data))


def test_zip_members_are_read_safely(tmp_path):
    good = (DATA / "anylabeling" / "demo_00_000010.xml").read_bytes()
    source = tmp_path / "export" / "labels.zip"
    source.parent.mkdir()
    with zipfile.ZipFile(source, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("Annotations/demo_00_000010.xml", good)
        archive.writestr("Annotations/locked.xml", good)
        archive.writestr("Annotations/huge.xml", good[:-15] + b" " * (1 << 20) + b"</annotation>\n")
        archive.writestr("Annotations/.demo_00_000010.xml.swp", b"\0")
        archive.writestr("__MACOSX/Annotations/._demo_00_000010.xml", b"\0\5\26\7")
        archive.writestr("../escaped.xml", good)
        archive.writestr("/etc/absolute.xml", good)
        archive.writestr("images/demo_00_000010.jpg", b"not used")
    patch_encrypted(source, "Annotations/locked.xml")
    frame_dirs = frames(tmp_path, "demo_00_000010", "locked", "huge")
    before = file_hashes(source.parent)
    summary = build_dataset(source, frame_dirs, tmp_path / "voc", classes=CLASSES, **DATASET)
    assert file_hashes(source.parent) == before
    assert summary["used"] == 1 and summary["annotation_files"] == 3
    found = problems_by_file(summary)
    assert found[f"{source}/Annotations/locked.xml"] == {("encrypted", None, "error")}
    assert found[f"{source}/Annotations/huge.xml"] == {("too_large", None, "error")}
    assert {Path(item["file"]).name: item["reason"] for item in summary["ignored"]} == {
        "escaped.xml": "the member's name is absolute or leads out of the zip ('..'); ignored",
        "absolute.xml": "the member's name is absolute or leads out of the zip ('..'); ignored",
        ".demo_00_000010.xml.swp": "hidden file (its name starts with '.'), ignored",
        "__MACOSX": "macOS metadata folder of the zip (1 file), ignored",
    }
    text = (tmp_path / "voc" / "validation.txt").read_text()
    assert "Note: 4 entries of the annotations were ignored" in text
    assert "password" in next(r["message"] for r in summary["problems"] if r["code"] == "encrypted")


def test_a_bad_zip_member_stops_with_one_line_naming_it(tmp_path):
    source = tmp_path / "labels.zip"
    with zipfile.ZipFile(source, "w") as archive:
        archive.writestr("Annotations/demo_00_000010.xml", (DATA / "anylabeling" / "demo_00_000010.xml").read_bytes())
        archive.writestr("Annotations/ghost.xml", (DATA / "anylabeling" / "demo_00_000012.xml").read_bytes())
    frame_dirs = frames(tmp_path, "demo_00_000010")
    command = [sys.executable, "-m", "detflow.dataset", str(source), str(tmp_path / "voc"), "--images",
               *map(str, frame_dirs), "--classes", "grab,drop",
               *config_options("dataset", "classes_from", "boxes_outside"), "--on-error", "stop"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"error: {source}/Annotations/ghost.xml: no image named ghost.jpg" in result.stderr


def test_a_file_that_is_not_a_zip(tmp_path):
    source = tmp_path / "export.zip"
    source.write_text("a download cut short")
    with pytest.raises(InputError, match="is not a readable .zip file") as raised:
        list_annotations(source)
    assert raised.value.where == str(source)
    notes = tmp_path / "notes.txt"
    notes.write_text("not annotations")
    with pytest.raises(InputError, match="is a file but not a .zip"):
        list_annotations(notes)


def test_a_zip_without_annotations_folder_uses_every_xml(tmp_path):
    source = tmp_path / "labels.zip"  # e.g. a labelImg folder zipped by hand: labels/x.xml
    with zipfile.ZipFile(source, "w") as archive:
        archive.writestr("labels/", b"")
        archive.writestr("labels/demo_00_000010.xml", (DATA / "anylabeling" / "demo_00_000010.xml").read_bytes())
        archive.writestr("labels/classes.txt", b"grab\ndrop\n")
    listing = list_annotations(source)
    assert [file.member for file in listing.files] == ["labels/demo_00_000010.xml"]
    [(file, data, problem)] = list(read_annotations(listing))
    assert problem is None and data == (DATA / "anylabeling" / "demo_00_000010.xml").read_bytes()


YOLO_LINES = b"0 0.468750 0.444444 0.312500 0.277778\n1 0.703125 0.555556 0.364583 0.555556\n"


def test_yolo_labels_are_refused_with_how_to_get_pascal_voc(tmp_path):
    labels = tmp_path / "labels"  # labelImg in YOLO mode: x.txt per image and classes.txt
    labels.mkdir()
    (labels / "classes.txt").write_text("grab\ndrop\n")
    (labels / "demo_00_000010.txt").write_bytes(YOLO_LINES)
    (labels / "demo_00_000012.txt").write_bytes(b"")
    with pytest.raises(InputError, match="holds YOLO label files") as raised:
        build_dataset(labels, frames(tmp_path, "demo_00_000010"), tmp_path / "voc", classes=CLASSES, **DATASET)
    assert raised.value.where == str(labels)
    assert "Ctrl+Y" in raised.value.reason and "PascalVOC" in raised.value.reason
    assert "demo_00_000010.txt" in raised.value.reason
    source = tmp_path / "yolo.zip"  # CVAT's YOLO 1.1 export
    with zipfile.ZipFile(source, "w") as archive:
        archive.writestr("obj.names", "grab\ndrop\n")
        archive.writestr("obj.data", "classes = 2\ntrain = data/train.txt\nnames = data/obj.names\n")
        archive.writestr("train.txt", "data/obj_train_data/demo_00_000010.jpg\n")
        archive.writestr("obj_train_data/demo_00_000010.txt", YOLO_LINES)
    with pytest.raises(InputError, match="holds YOLO label files"):
        list_annotations(source)


def test_classes_txt_alone_is_not_yolo(tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "classes.txt").write_text("0 1 2 3 4\n")  # even when a class list happens to look like numbers
    (labels / "train.txt").write_text("data/obj_train_data/demo_00_000010.jpg\n")
    assert list_annotations(labels).files == []
    with pytest.raises(InputError, match="no annotation files"):
        build_dataset(labels, frames(tmp_path, "demo_00_000010"), tmp_path / "voc", classes=CLASSES, **DATASET)


def test_validation_json_lists_what_was_ignored(tmp_path):
    export = tmp_path / "export"
    shutil.copytree(DATA / "anylabeling", export)
    (export / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    summary = build_dataset(export, frames(tmp_path, "demo_00_000010", "demo_00_000012", "demo_01_000004"),
                            tmp_path / "voc", classes=CLASSES, **DATASET)
    written = json.loads((tmp_path / "voc" / "validation.json").read_text())
    assert written["ignored"] == summary["ignored"] == [
        {"file": str(export / ".DS_Store"), "reason": "hidden file (its name starts with '.'), ignored"}]


def test_a_real_label_studio_servers_voc_export_matches_served_and_uploaded_frames(tmp_path):
    """Both kinds of name the server's own Pascal VOC export writes, matched to the frames."""
    export = tmp_path / "export"
    shutil.copytree(DATA / "label_studio_voc", export / "Annotations")
    images = tmp_path / "frames" / "clip"
    images.mkdir(parents=True)
    write_image(images / "clip_000002.jpg", size=(136, 180))
    write_image(images / "clip_000008.jpg", size=(191, 138), seed=1)
    summary = build_dataset(export, [images], tmp_path / "voc", classes=["grab", "drop"], **DATASET)
    assert summary["used"] == 2 and summary["skipped"] == 0
    assert sorted(path.name for path in (tmp_path / "voc" / "Annotations").iterdir()) == [
        "clip_000002.xml", "clip_000008.xml"]
    assert not [record for record in summary["problems"] if record["code"] == "filename_mismatch"]

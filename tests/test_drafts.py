"""Pre-labelling: drafts in labelImg's format for chosen frames nobody has
labelled, in their own folder, never over a person's file or an earlier draft,
with boxes that keras-retinanet reads back where the model put them."""
import csv
import shutil
import subprocess
import sys

import numpy as np
import pytest
from keras_retinanet.preprocessing.pascal_voc import PascalVocGenerator
from lxml import etree

from detflow.drafts import instructions, write_drafts
from detflow.lib.cli import InputError
from detflow.lib.data.pascal_voc import read_annotation, write_annotation
from detflow.lib.inference import detector as inference
from helpers.config import config_options
from helpers.media import file_hashes
from helpers.models import detector
from helpers.voc import CLASSES, make_voc

VIDEO = "clip"
FRAMES = [f"{VIDEO}_{index:06d}.jpg" for index in range(0, 16, 2)]


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    """4 train images (the model's, see conftest) and a val image per frame."""
    return make_voc(tmp_path_factory.mktemp("data") / "voc", train=4, val=len(FRAMES))


@pytest.fixture(scope="module")
def data(voc, model, tmp_path_factory):
    """Frames of one video chosen for labelling (copies of voc's val images), their selection and the model."""
    root = tmp_path_factory.mktemp("prelabel")
    frames = root / "frames" / VIDEO
    frames.mkdir(parents=True)
    for index, name in enumerate(FRAMES):
        shutil.copyfile(voc / "JPEGImages" / f"val_{index:03d}.jpg", frames / name)
    selection = root / "selected" / f"{VIDEO}.csv"
    selection.parent.mkdir()
    selection.write_text("frame_index,timestamp_s,file\n" + "".join(
        f"{int(name[-10:-4])},{int(name[-10:-4]) / 10:.3f},{name}\n" for name in FRAMES))
    return root, selection, frames, model


def person_folder(tmp_path):
    """The person's labels: the first frame labelled (with a suffix in capitals), the rest not yet."""
    labels = tmp_path / "labels"
    labels.mkdir()
    write_annotation(labels / f"{FRAMES[0][:-4]}.XML", filename=FRAMES[0], width=10, height=10,
                     objects=[{"name": "grab", "xmin": 1, "ymin": 1, "xmax": 5, "ymax": 5}])
    return labels


def run(data, tmp_path, labels, score_threshold=0.5):
    _, selection, frames, model = data
    return write_drafts(detector(model, score_threshold), [selection], [frames], labels, tmp_path / "drafts",
                        tmp_path / "drafts" / "drafts.csv", labelling_images_dir=tmp_path / "images",
                        batch_size=3)


def manifest(tmp_path):
    with open(tmp_path / "drafts" / "drafts.csv", newline="") as stream:
        return {row["file"]: row for row in csv.DictReader(stream)}


def test_drafts_for_unlabelled_frames_only_never_replacing_anything(data, tmp_path):
    labels = person_folder(tmp_path)
    drafts = tmp_path / "drafts"
    drafts.mkdir()
    corrected = drafts / f"{FRAMES[1][:-4]}.xml"
    corrected.write_text("<annotation>a draft someone is correcting</annotation>\n")
    frames = data[2]
    broken = tmp_path / "broken_frames" / VIDEO
    shutil.copytree(frames, broken)
    (broken / FRAMES[2]).write_bytes(b"not an image")
    labels_before, corrected_before = file_hashes(labels), corrected.read_bytes()
    counts = write_drafts(detector(data[3]), [data[1]], [broken], labels, drafts, drafts / "drafts.csv",
                          labelling_images_dir=tmp_path / "images", batch_size=3)
    assert counts == {"labelled": 1, "draft exists": 1, "unreadable": 1, "drafted": len(FRAMES) - 3}
    rows = manifest(tmp_path)
    assert [rows[name]["status"] for name in FRAMES[:3]] == ["labelled", "draft exists", "unreadable"]
    assert all(rows[name]["status"] == "drafted" and int(rows[name]["boxes"]) > 0 for name in FRAMES[3:])
    assert sorted(path.name for path in drafts.glob("*.xml")) == sorted(f"{name[:-4]}.xml" for name in FRAMES[1:2] + FRAMES[3:])
    assert file_hashes(labels) == labels_before and corrected.read_bytes() == corrected_before
    written = {path: path.stat().st_mtime_ns for path in drafts.glob("*.xml")}
    again = write_drafts(detector(data[3]), [data[1]], [frames], labels, drafts, drafts / "drafts.csv",
                         labelling_images_dir=tmp_path / "images")
    assert again == {"labelled": 1, "draft exists": len(FRAMES) - 2, "drafted": 1}  # only the now readable frame
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in written.items())


def test_drafts_are_labelimg_files_that_keras_retinanet_reads_where_the_model_saw_the_boxes(data, tmp_path):
    run(data, tmp_path, person_folder(tmp_path))
    _, _, frames, model = data
    voc = tmp_path / "voc"
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / folder).mkdir(parents=True)
    image_ids = [name[:-4] for name in FRAMES[1:]]
    for image_id in image_ids:
        shutil.copyfile(frames / f"{image_id}.jpg", voc / "JPEGImages" / f"{image_id}.jpg")
        shutil.copyfile(tmp_path / "drafts" / f"{image_id}.xml", voc / "Annotations" / f"{image_id}.xml")
    (voc / "ImageSets" / "Main" / "drafts.txt").write_text("\n".join(image_ids) + "\n")
    generator = PascalVocGenerator(str(voc), "drafts", classes=CLASSES)
    paths = [(image_id, frames / f"{image_id}.jpg") for image_id in image_ids]
    for index, (image_id, image, detections) in enumerate(inference.detect_images(detector(model), paths, 4)):
        draft = tmp_path / "drafts" / f"{image_id}.xml"
        annotation = read_annotation(draft)
        assert annotation.problems == []
        root = etree.parse(str(draft)).getroot()
        assert [child.tag for child in root] == ["folder", "filename", "path", "source", "size", "segmented",
                                                 *["object"] * len(detections)]
        assert root.findtext("path") == str(tmp_path / "images" / f"{image_id}.jpg")
        assert (annotation.filename, annotation.width, annotation.height) == (f"{image_id}.jpg", image.shape[1],
                                                                              image.shape[0])
        assert [item.name for item in annotation.objects] == [detection.name for detection in detections]
        read_back = generator.load_annotations(index)  # keras-retinanet subtracts 1 from VOC's coordinates
        assert [generator.label_to_name(label) for label in read_back["labels"]] == [d.name for d in detections]
        expected = np.clip([detection.box for detection in detections], 0, [image.shape[1] - 1, image.shape[0] - 1] * 2)
        assert np.abs(read_back["bboxes"] - expected).max() <= 0.5


def test_nothing_detected_means_no_draft(data, tmp_path):
    counts = run(data, tmp_path, person_folder(tmp_path), score_threshold=1.0)
    assert counts == {"labelled": 1, "no detections": len(FRAMES) - 1}
    assert not list((tmp_path / "drafts").glob("*.xml"))
    text = instructions(counts, tmp_path / "drafts", tmp_path / "labels", tmp_path / "images",
                                 tmp_path / "classes.txt", 1.0)
    assert "7 with no detection scoring 1 or more" in text and "labelImg" not in text


def test_instructions_open_the_drafts_in_labelimg_and_accept_without_replacing(tmp_path):
    text = instructions({"drafted": 3, "labelled": 2}, tmp_path / "drafts", tmp_path / "my labels",
                                 tmp_path / "images", tmp_path / "classes.txt", 0.5)
    assert text.startswith("Drafts: 3 new in ")
    assert f"detflow label --drafts --images {tmp_path / 'images'} " \
           f"--classes {tmp_path / 'classes.txt'} --drafts-dir {tmp_path / 'drafts'}" in text
    assert f"detflow label accept --drafts-dir {tmp_path / 'drafts'} " \
           f"--save-dir '{tmp_path / 'my labels'}' --images {tmp_path / 'images'}" in text


@pytest.mark.parametrize("drafts", ["labels", "labels/drafts"])
def test_drafts_never_go_into_the_persons_folder(data, tmp_path, drafts):
    labels = person_folder(tmp_path)
    before = file_hashes(labels)
    with pytest.raises(InputError, match="overlaps the annotations folder"):
        write_drafts(detector(data[3]), [data[1]], [data[2]], labels, tmp_path / drafts,
                     tmp_path / "drafts.csv", labelling_images_dir=tmp_path / "images")
    assert file_hashes(labels) == before


def test_a_draft_model_of_other_classes_or_none_at_all_is_one_line(data, model_path, tmp_path):
    """Drafts come from the model that exists: without one, or with one of other classes, one line says so."""
    root, selection, frames, _ = data
    labels = person_folder(tmp_path)
    before = file_hashes(labels)

    def drafts_command(model, classes):
        return subprocess.run(
            [sys.executable, "-m", "detflow.drafts", str(model), "--selections", str(selection), "--frame-dirs",
             str(frames), "--annotations-dir", str(labels), "--drafts-dir", str(tmp_path / "drafts"), "--manifest",
             str(tmp_path / "drafts.csv"), "--labelling-images", str(tmp_path / "images"), "--classes-file",
             str(tmp_path / "classes.txt"), "--class-names", classes, *config_options("prelabel"),
             *config_options("predict", "batch_size")], capture_output=True, text=True)

    other = drafts_command(model_path, "wave,point")
    assert other.returncode == 1 and "Traceback" not in other.stderr
    assert other.stderr.strip().splitlines()[-1] == (
        f"error: {model_path}: was trained on the classes grab, drop (in label order), but config.yaml's classes "
        "has wave, point: its detections would get the wrong names")
    missing = drafts_command(tmp_path / "none.h5", ",".join(CLASSES))
    assert missing.returncode == 1 and "no model here yet" in missing.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "drafts").exists() and file_hashes(labels) == before


def test_asking_for_drafts_with_no_model_yet_or_one_of_other_classes_stops_before_any_job(workflow_copy, model_path,
                                                                                          tmp_path):
    """`snakemake drafts`, `next_frames` or `label_studio_drafts` with no model yet, or with a model of other
    classes: refused while planning, naming the setting and the reason, before any job has run."""
    missing = tmp_path / "no_model_yet.h5"
    workflow_copy.set_config(labelling={"draft_model": str(missing)})
    for target in ("drafts", "next_frames", "label_studio_drafts"):
        refused = workflow_copy.snakemake(target, check=False)
        assert refused.returncode != 0
        assert (f"labelling.draft_model: {missing}: no model here yet (file not found or empty): `snakemake --cores "
                "all` trains one") in refused.stdout
    workflow_copy.set_config(labelling={"draft_model": str(model_path)}, classes=["wave", "point"])
    refused = workflow_copy.snakemake("drafts", check=False)
    assert refused.returncode != 0
    assert (f"labelling.draft_model: {model_path}: was trained on the classes grab, drop (in label order), but "
            "config.yaml's classes has wave, point") in refused.stdout
    assert not (workflow_copy.root / "results").exists()  # not even the demo's videos were made

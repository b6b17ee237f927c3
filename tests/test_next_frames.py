"""The next frames to label, chosen by the model (detflow.next_frames, detflow.lib.labelling.next_frames):
uncertainty from the model's scores and from a frame against its mirror image, novelty in look and time
against what is labelled or chosen already in the same video, and a round that adds its frames to the
labelling folder with their drafts, without touching a person's label."""
import csv
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from detflow import next_frames
from detflow.lib.cli import InputError
from detflow.lib.data.pascal_voc import read_annotation, write_annotation
from detflow.lib.inference.detector import frame_reader
from detflow.lib.labelling.frame_points import THUMBNAIL_SIZE, VIDEOS_APART, frame_points
from detflow.lib.labelling.next_frames import (
    UNCERTAINTY_FLOOR, binary_entropy, choose, mirror_disagreement, mirrored, score_entropy, uncertainty,
)
from helpers.media import file_hashes
from helpers.voc import make_voc

VIDEOS = ("left", "right")


def test_a_score_near_one_half_is_the_least_decided():
    assert binary_entropy([0.5])[0] == pytest.approx(1.0)
    assert binary_entropy([0.0, 1.0]).tolist() == pytest.approx([0.0, 0.0], abs=1e-4)
    assert score_entropy([0.95, 0.6, 0.1]) == pytest.approx(binary_entropy([0.6])[0])
    assert score_entropy([]) == 0.0


def test_a_frame_and_its_mirror_image_agree_when_their_boxes_do():
    boxes, scores, labels = np.array([[10, 20, 50, 60]], float), np.array([0.9]), np.array([0])
    same = (mirrored(mirrored(boxes, 100), 100), scores, labels)
    assert mirror_disagreement((boxes, scores, labels), same) == pytest.approx(0.0)
    assert mirror_disagreement((boxes, scores, labels), (np.zeros((0, 4)), np.zeros(0), np.zeros(0))) == 0.9
    other_class = (boxes, scores, np.array([1]))
    assert mirror_disagreement((boxes, scores, labels), other_class) == pytest.approx(0.9)
    shifted = (boxes + [20, 0, 20, 0], np.array([0.7]), labels)  # IoU 1/3, scores 0.2 apart
    assert mirror_disagreement((boxes, scores, labels), shifted) == pytest.approx(0.9 * (1 - (1 / 3) * 0.8))
    assert uncertainty(0.0, 0.0) == UNCERTAINTY_FLOOR and uncertainty(1.0, 1.0) == pytest.approx(1.0)


def test_near_identical_uncertain_frames_are_not_all_chosen():
    """Five copies of the most uncertain frame and three other, less uncertain, different ones."""
    copies = [[1.0, 0.0, 0.0]] * 5
    others = [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.7, 0.7, 0.0]]
    picks = choose([0.9] * 5 + [0.6, 0.5, 0.4], copies + others, np.zeros((0, 3)), 4)
    chosen = [pick.index for pick in picks]
    assert chosen[0] in range(5) and sum(index < 5 for index in chosen) == 1
    assert set(chosen[1:]) == {5, 6, 7}
    assert all(pick.score == pytest.approx(pick.uncertainty * pick.novelty) for pick in picks)
    # A frame like one labelled already is not new: the distinct one comes first.
    known = choose([0.9, 0.5], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [[1.0, 0.0, 0.0]], 1)
    assert [pick.index for pick in known] == [1]


def write_frames(folder, colours):
    """One small image per colour (BGR), a white disc on it, named frame_<n>.jpg."""
    folder.mkdir(parents=True)
    paths = []
    for number, colour in enumerate(colours):
        image = np.full((120, 160, 3), colour, np.uint8)
        cv2.circle(image, (80, 60), 20, (255, 255, 255), -1)
        paths.append(folder / f"frame_{number}.jpg")
        cv2.imwrite(str(paths[-1]), image)
    return paths


def test_novelty_is_against_the_frames_known_of_the_same_video(tmp_path):
    """Two videos that look alike; only the first has a frame known. Its look-alike neighbours are not new,
    the other video's frames are, and among them the most uncertain is taken; then the other video's frame
    of a new look, though less uncertain than a near-copy of the frame just taken."""
    red, blue = (30, 30, 200), (200, 60, 30)
    first = write_frames(tmp_path / "first", [red, red, red])
    second = write_frames(tmp_path / "second", [red, red, blue])
    points = frame_points(first + second, [0.0, 0.2, 0.4, 0.0, 0.2, 0.4], ["first"] * 3 + ["second"] * 3)
    assert points.shape == (6, THUMBNAIL_SIZE[0] * THUMBNAIL_SIZE[1] * 3 + 1)
    assert np.linalg.norm(points[3] - points[0]) > VIDEOS_APART / 2 > np.linalg.norm(points[2] - points[0])
    picks = choose([0.3, 0.3, 0.9, 0.8, 0.4], points[1:], points[:1], 3)
    assert [pick.index for pick in picks[:2]] == [2, 4]  # second's first frame, then its blue one
    assert picks[0].novelty > VIDEOS_APART / 2 > picks[1].novelty > 0


@pytest.fixture
def project(tmp_path, voc):
    """Two videos' frame folders and manifests (copies of voc's val images), one frame of each chosen and
    one of them labelled by a person."""
    root = tmp_path / "project"
    images = sorted((voc / "JPEGImages").glob("val_*.jpg"))
    manifests, frame_dirs = [], []
    for number, video in enumerate(VIDEOS):
        frames = root / "results" / "frames" / video
        frames.mkdir(parents=True)
        rows = []
        for index, image in enumerate(images[number::2]):
            name = f"{video}_{2 * index:06d}.jpg"
            shutil.copyfile(image, frames / name)
            rows.append((2 * index, f"{index / 5:.3f}", name, "true", "", "stream", f"{video}.mp4"))
        manifest = root / "results" / "frames" / f"{video}.csv"
        with open(manifest, "w", newline="") as stream:
            table = csv.writer(stream)
            table.writerow(("frame_index", "timestamp_s", "file", "kept", "reason", "timestamp_from", "source"))
            table.writerows(rows)
        manifests.append(manifest)
        frame_dirs.append(frames)
        selection = root / "results" / "labelling" / "selected" / f"{video}.csv"
        selection.parent.mkdir(parents=True, exist_ok=True)
        selection.write_text(f"frame_index,timestamp_s,file\n0,0.000,{video}_000000.jpg\n")
    labels = root / "labels"
    labels.mkdir()
    write_annotation(labels / "left_000002.xml", filename="left_000002.jpg", width=160, height=120, objects=[])
    return root, manifests, frame_dirs, labels


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    return make_voc(tmp_path_factory.mktemp("data") / "voc", train=4, val=12)


def run_round(project, model_path, batch):
    root, manifests, frame_dirs, labels = project
    from detflow.lib.inference.detector import load_checked_model

    card, model = load_checked_model(model_path)
    selections = sorted((root / "results" / "labelling" / "selected").glob("*.csv"))
    selections += sorted((root / "results" / "labelling" / "added").glob("*.csv"))
    return next_frames.next_frames(
        frame_reader(model, card), card, manifests=manifests, frame_dirs=frame_dirs, selections=selections,
        selection_frame_dirs=[root / "results" / "frames" / path.stem for path in selections],
        annotations_dir=labels, added_dir=root / "results" / "labelling" / "added",
        report=root / "results" / "labelling" / "next_frames.csv",
        labelling_images=root / "results" / "labelling" / "images", drafts_dir=root / "results" / "drafts",
        batch=batch, score_threshold=0.0)


def test_a_round_adds_frames_with_drafts_and_says_why(project, model_path):
    root, _, _, labels = project
    person = file_hashes(labels)
    rows = run_round(project, model_path, 3)
    assert [row[:2] for row in rows] == [(1, 1), (1, 2), (1, 3)]
    chosen = {row[5] for row in rows}
    assert not chosen & {"left_000000.jpg", "right_000000.jpg", "left_000002.jpg"}  # chosen or labelled already
    assert {path.name for path in (root / "results" / "labelling" / "images").iterdir()} == chosen
    added = {path.stem: path.read_text().splitlines()[1:] for path in (root / "results" / "labelling" /
                                                                      "added").iterdir()}
    assert sorted(line.split(",")[2] for lines in added.values() for line in lines) == sorted(chosen)
    with open(root / "results" / "labelling" / "next_frames.csv", newline="") as stream:
        report = list(csv.DictReader(stream))
    assert [row["file"] for row in report] == [row[5] for row in rows]
    for row in report:
        assert float(row["score"]) == pytest.approx(float(row["uncertainty"]) * float(row["novelty"]), abs=2e-4)
    drafts = sorted((root / "results" / "drafts").glob("*.xml"))
    assert drafts and {path.stem + ".jpg" for path in drafts} <= chosen
    assert all(read_annotation(path).objects for path in drafts)
    assert file_hashes(labels) == person

    again = run_round(project, model_path, 3)  # the next round takes others, and numbers itself
    assert {row[0] for row in again} == {2} and not {row[5] for row in again} & chosen


def test_no_model_yet_is_one_line_saying_how_to_get_one(project, tmp_path):
    root, manifests, frame_dirs, labels = project
    missing = root / "results" / "model" / "inference.h5"
    result = subprocess.run(
        [sys.executable, "-m", "detflow.next_frames", str(missing), "--manifests", *map(str, manifests),
         "--frame-dirs", *map(str, frame_dirs), "--selections", str(manifests[0]), "--selection-frame-dirs",
         str(frame_dirs[0]), "--annotations-dir", str(labels), "--added-dir", str(tmp_path / "added"),
         "--report", str(tmp_path / "r.csv"), "--labelling-images", str(tmp_path / "i"), "--drafts-dir",
         str(tmp_path / "d"), "--batch", "2", "--score-threshold", "0.5", "--class-names", "grab,drop"],
        capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {missing}: no model here yet (file not found or empty): `snakemake --cores all` trains one and "
        "writes results/model/inference.h5 (labelling.draft_model in config.yaml may name another for drafts "
        "and next frames)")
    assert not (tmp_path / "added").exists()


def test_a_report_that_is_not_next_frames_is_refused_and_kept(tmp_path):
    """The rounds are numbered from the report; one edited in a spreadsheet or written by another version is
    named with its reason before anything is chosen, and left as it is."""
    report = tmp_path / "next_frames.csv"
    assert next_frames.next_round(report) == 1
    report.write_text("")
    assert next_frames.next_round(report) == 1
    header = ",".join(next_frames.REPORT_COLUMNS)
    next_frames._append_csv(report, next_frames.REPORT_COLUMNS, [(1, 1, "a")])  # an empty report gets its header
    assert report.read_text() == f"{header}\n1,1,a\n"
    report.write_text(f"{header}\n1,1,a\n\n2,1,b\n")
    assert next_frames.next_round(report) == 3
    for text, why in ((f"{header}\n1,1,a\nround 2,1,b\n", "line 3: round 'round 2' is not a whole number"),
                      (f"{header}\n\u00b2,1,a\n", "line 2: round '\u00b2' is not a whole number"),
                      ("round;rank;video\n1;1;a\n", "is not next_frames' report (its columns are not round,rank,"),
                      (b"\xff\xfe r\x00", "cannot be read (")):
        (report.write_bytes if isinstance(text, bytes) else report.write_text)(text)
        with pytest.raises(InputError) as error:
            next_frames.next_round(report)
        assert str(error.value).startswith(f"{report}: {why}")
        assert str(error.value).endswith("rename it to keep it, and the next round starts a new report")
        assert (report.read_bytes() if isinstance(text, bytes) else report.read_text()) == text

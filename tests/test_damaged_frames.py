"""A frame damaged on disk after extraction (truncated, as by a full disk or a copy cut short):
the dataset stage decodes every image it admits and refuses it by name; the training stage, given
such an image directly, stops with one line naming it instead of TensorFlow's traceback."""
import subprocess
import sys

import pytest

from detflow.dataset import build_dataset
from detflow.lib.cli import InputError
from helpers.config import DATASET
from helpers.media import truncated_copy
from helpers.models import settings_options
from helpers.voc import CLASSES, labelled_videos, make_voc


@pytest.fixture
def labelled(tmp_path):
    """Frames of two videos with their annotations, one frame then truncated to half its bytes."""
    annotations, frame_dirs = labelled_videos(tmp_path / "input", ["clip_a", "clip_b"], frames=3)
    damaged = frame_dirs[0] / "clip_a_000001.jpg"
    truncated_copy(damaged, damaged, 0.5)
    return annotations, frame_dirs, damaged


def test_the_dataset_stage_skips_a_truncated_frame_naming_it(labelled, tmp_path):
    annotations, frame_dirs, damaged = labelled
    summary = build_dataset(annotations, frame_dirs, tmp_path / "voc", classes=list(CLASSES), on_error="skip",
                            classes_from=DATASET["classes_from"], boxes_outside=DATASET["boxes_outside"])
    assert (summary["annotation_files"], summary["used"], summary["skipped"]) == (6, 5, 1)
    [problem] = [record for record in summary["problems"] if record["severity"] == "error"]
    assert problem["file"] == str(annotations / "clip_a_000001.xml") and problem["code"] == "image_damaged"
    assert problem["message"].startswith(f"the image {damaged} cannot be decoded (image file is truncated")
    assert not (tmp_path / "voc" / "JPEGImages" / "clip_a_000001.jpg").exists()
    assert f"the image {damaged} cannot be decoded" in (tmp_path / "voc" / "validation.txt").read_text()


def test_the_dataset_stage_stops_at_a_truncated_frame_naming_it(labelled, tmp_path):
    annotations, frame_dirs, damaged = labelled
    with pytest.raises(InputError) as error:
        build_dataset(annotations, frame_dirs, tmp_path / "voc", classes=list(CLASSES), on_error="stop",
                      classes_from=DATASET["classes_from"], boxes_outside=DATASET["boxes_outside"])
    assert error.value.where == str(annotations / "clip_a_000001.xml")
    assert error.value.reason.startswith(f"the image {damaged} cannot be decoded (image file is truncated")


def test_training_names_a_truncated_image_in_one_line(tmp_path):
    voc = make_voc(tmp_path / "voc", train=4, val=2)
    damaged = voc / "JPEGImages" / "train_002.jpg"
    truncated_copy(damaged, damaged, 0.5)
    work = tmp_path / "work"
    # 2 steps of 2 images read all 4 training images in the first epoch.
    result = subprocess.run(
        [sys.executable, "-m", "detflow.train", str(voc), "--metrics", str(work / "metrics.csv"),
         "--summary", str(work / "training.json"), "--snapshots", str(work / "snapshots"),
         "--tensorboard", str(work / "tensorboard"), "--classes", ",".join(CLASSES), "--threads", "1",
         *settings_options(epochs=1, steps=2)],
        capture_output=True, text=True, timeout=900)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"error: {damaged}: cannot be decoded as an image (image file is truncated")
    assert "Traceback" not in result.stderr
    assert not (work / "training.json").exists()

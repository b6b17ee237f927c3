"""The synthetic demo: seeded and deterministic, hands whose class shows in their
shape, tight boxes inside the frame, and labels written as labelImg VOC XML."""
import csv
import subprocess
import sys

import cv2
import numpy as np
import pytest

from detflow.demo import _hand_transform, draw_hand, generate_video, hand_shape, poses_for_classes
from detflow.demo_labeller import write_demo_labels
from detflow.frames import extract_frames
from detflow.frames_to_label import select_frames
from detflow.lib.cli import InputError
from detflow.lib.data.gesture_truth import read_truth
from detflow.lib.data.pascal_voc import read_annotation
from helpers.media import EVERY_FRAME, decoded_frames

SMALL = {"seconds": 3, "fps": 10, "width": 160, "height": 120}


def make_demo(folder, index, seed=7, classes=("grab", "drop"), **settings):
    options = {**SMALL, **settings}
    video, truth = folder / f"demo_{index:02d}.mp4", folder / f"demo_{index:02d}.csv"
    generate_video(video, truth, index=index, seed=seed, classes=list(classes), **options)
    return video, truth


def truth_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_same_seed_same_video_other_index_other_video(tmp_path):
    first_video, first_truth = make_demo(tmp_path / "a", 0)
    again_video, again_truth = make_demo(tmp_path / "b", 0)
    other_video, other_truth = make_demo(tmp_path / "c", 1)
    assert first_truth.read_bytes() == again_truth.read_bytes()
    assert first_video.read_bytes() == again_video.read_bytes()
    assert first_truth.read_bytes() != other_truth.read_bytes()
    assert not np.array_equal(decoded_frames(first_video)[0], decoded_frames(other_video)[0])


def test_video_and_truth_agree(tmp_path):
    video, truth = make_demo(tmp_path, 2)
    frames = decoded_frames(video)
    assert len(frames) == 30 and frames[0].shape == (120, 160, 3)
    rows = truth_rows(truth)
    assert list(rows[0]) == ["frame_index", "class", "xmin", "ymin", "xmax", "ymax"]
    for row in rows:
        xmin, ymin, xmax, ymax = (int(row[key]) for key in ("xmin", "ymin", "xmax", "ymax"))
        assert 0 <= xmin < xmax <= 159 and 0 <= ymin < ymax <= 119  # clipped to the frame
        assert 0 <= int(row["frame_index"]) < 30
        assert row["class"] in ("grab", "drop")


def test_many_videos_show_both_classes_at_useful_sizes(tmp_path):
    hands_per_frame, heights, classes = [], [], set()
    for index in range(8):
        _, truth = make_demo(tmp_path, index, seconds=8)
        boxes = read_truth(truth)
        hands_per_frame += [len(boxes.get(frame, [])) for frame in range(80)]
        for objects in boxes.values():
            classes.update(label for label, *_ in objects)
            heights += [(ymax - ymin + 1) / 120 for _, _, ymin, _, ymax in objects]
    assert classes == {"grab", "drop"}
    assert max(hands_per_frame) == 2
    assert 0.01 <= hands_per_frame.count(0) / len(hands_per_frame) <= 0.15  # now and then no hand
    assert hands_per_frame.count(2) / len(hands_per_frame) > 0.2
    assert 0.1 < np.percentile(heights, 5) and np.percentile(heights, 95) < 0.6  # hands neither tiny nor huge


def draw_alone(pose, angle=20.0, mirrored=False):
    """A white hand with a black sleeve on black, 400x400: its pixels and its returned box."""
    frame = np.zeros((400, 400, 3), np.float32)
    matrix = _hand_transform(200, 180, 220, angle, mirrored)
    box = draw_hand(frame, hand_shape(pose, spread=1.3, finger_scale=1.0), matrix, np.full(3, 255.0), np.zeros(3))
    return frame[..., 0] > 100, box


@pytest.mark.parametrize("pose", ["fist", "open", "victory"])
def test_box_is_tight_around_the_drawn_hand(pose):
    hand, box = draw_alone(pose)
    ys, xs = np.nonzero(hand)
    assert np.allclose(box, (xs.min(), ys.min(), xs.max(), ys.max()), atol=1)


def solidity(mask):
    """Area of a shape over the area of its convex hull: 1 for a blob, low for spread fingers."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    contour = max(contours, key=cv2.contourArea)
    return cv2.contourArea(contour) / cv2.contourArea(cv2.convexHull(contour))


def test_classes_differ_by_shape():
    poses = poses_for_classes(["grab", "drop"])
    assert poses == {"grab": "fist", "drop": "open"}
    for angle, mirrored in ((0.0, False), (-40.0, True)):
        fist, fist_box = draw_alone(poses["grab"], angle, mirrored)
        open_hand, open_box = draw_alone(poses["drop"], angle, mirrored)
        assert solidity(fist) > 0.9 > 0.75 > solidity(open_hand)
        assert (open_box[3] - open_box[1]) > 1.2 * (fist_box[3] - fist_box[1])  # fingers stretched out


def test_extra_classes_get_their_own_poses():
    poses = poses_for_classes(["drop", "wave", "grab", "point"])
    assert poses["grab"] == "fist" and poses["drop"] == "open"
    assert len(set(poses.values())) == 4
    masks = [draw_alone(pose)[0] for pose in poses.values()]
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.mean(masks[i] != masks[j]) > 0.01


def test_too_few_classes_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="at least two classes"):
        make_demo(tmp_path, 0, classes=("grab",))
    result = subprocess.run([sys.executable, "-m", "detflow.demo", "video", str(tmp_path / "v.mp4"),
                             str(tmp_path / "t.csv"), "--index", "0", "--seed", "1", "--seconds", "1", "--fps", "5",
                             "--width", "64", "--height", "64", "--classes", "grab"], capture_output=True, text=True)
    assert result.returncode == 1
    assert "error: config: classes: the demo needs at least two classes" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_labels_are_voc_files_of_the_chosen_frames(tmp_path):
    selections, truths, frame_dirs = [], [], []
    for index in (0, 1):
        video, truth = make_demo(tmp_path / "videos", index)
        frame_dir = tmp_path / "frames" / video.stem
        extract_frames([video], frame_dir, tmp_path / "frames" / f"{video.stem}.csv", **{**EVERY_FRAME, "every_nth": 2})
        selection = tmp_path / "selected" / f"{video.stem}.csv"
        select_frames(tmp_path / "frames" / f"{video.stem}.csv", frame_dir, selection, frames_per_video=5)
        selections.append(selection), truths.append(truth), frame_dirs.append(frame_dir)
    out = tmp_path / "annotations"
    assert write_demo_labels(selections, truths, frame_dirs, out) == 10
    for selection, truth in zip(selections, truths):
        boxes = read_truth(truth)
        for row in truth_rows(selection):
            annotation = read_annotation(out / row["file"].replace(".jpg", ".xml"))
            assert annotation.filename == row["file"]
            assert (annotation.width, annotation.height) == (160, 120)
            expected = sorted((label, xmin + 1, ymin + 1, xmax + 1, ymax + 1)
                              for label, xmin, ymin, xmax, ymax in boxes.get(int(row["frame_index"]), []))
            found = sorted((item.name, *item.box) for item in annotation.objects)
            assert not annotation.errors
            assert found == expected

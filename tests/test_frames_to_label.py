"""Choosing frames to label (spread over time and appearance) and gathering them
into the labelImg folder, on frames extracted from real videos."""
import csv
import shlex

import cv2
import numpy as np
import pytest

from detflow.frames import extract_frames
from detflow.frames_to_label import labelling_folder, select_frames
from detflow.lib.cli import InputError
from detflow.lib.labelling.frame_points import farthest_point_order
from helpers.media import EVERY_FRAME, file_hashes, write_video


def scene_frame(scene, index, size=(160, 120)):
    """Frames of one 'scene' look alike (same colour and layout), with a little motion."""
    width, height = size
    frame = np.full((height, width, 3), ((60, 40, 200), (40, 180, 60), (200, 120, 30))[scene], np.uint8)
    cv2.circle(frame, (40 + index % 5, 60), 20, (255, 255, 255), -1)
    return frame


def scene_of(index):
    """Scene 0 throughout, but for two short scenes: 1 at frames 20-22 and 2 at frames 47-49."""
    return 1 if 20 <= index <= 22 else 2 if 47 <= index <= 49 else 0


@pytest.fixture
def three_scenes(tmp_path):
    """A 60-frame video of one long scene interrupted by two short ones; its extracted frames."""
    video = write_video(tmp_path / "videos" / "scenes.avi", [scene_frame(scene_of(i), i) for i in range(60)])
    frames_dir, manifest = tmp_path / "frames" / "scenes", tmp_path / "frames" / "scenes.csv"
    extract_frames([video], frames_dir, manifest, **EVERY_FRAME)
    return frames_dir, manifest


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_farthest_point_order_spreads_over_a_line():
    points = np.linspace(0, 1, 11)[:, None]
    assert farthest_point_order(points, 3) == [0, 10, 5]
    assert sorted(farthest_point_order(points, 50)) == list(range(11))


def test_choice_covers_every_scene_and_the_whole_video(tmp_path, three_scenes):
    frames_dir, manifest = three_scenes
    out = tmp_path / "selected" / "scenes.csv"
    assert select_frames(manifest, frames_dir, out, frames_per_video=6) == 6
    rows = read_csv(out)
    assert list(rows[0]) == ["frame_index", "timestamp_s", "file"]
    indices = [int(row["frame_index"]) for row in rows]
    assert indices == sorted(indices)
    assert {scene_of(index) for index in indices} == {0, 1, 2}
    assert min(indices) < 10 and max(indices) > 50  # and over the whole video
    # Spreading by time alone misses both short scenes.
    by_time = farthest_point_order(np.arange(60.0)[:, None], 6)
    assert {scene_of(index) for index in by_time} == {0}
    for row in rows:
        assert (frames_dir / row["file"]).is_file()
        assert row["file"] == f"scenes_{int(row['frame_index']):06d}.jpg"


def test_choice_is_deterministic_and_takes_all_when_few(tmp_path, three_scenes):
    frames_dir, manifest = three_scenes
    select_frames(manifest, frames_dir, tmp_path / "a.csv", frames_per_video=10)
    select_frames(manifest, frames_dir, tmp_path / "b.csv", frames_per_video=10)
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
    select_frames(manifest, frames_dir, tmp_path / "all.csv", frames_per_video=1000)
    assert len(read_csv(tmp_path / "all.csv")) == 60


def test_skipped_duplicates_are_never_chosen(tmp_path):
    frames = [scene_frame(0, 0)] * 20 + [scene_frame(1, i) for i in range(5)]
    video = write_video(tmp_path / "still.avi", frames)
    extract_frames([video], tmp_path / "still", tmp_path / "still.csv", **{**EVERY_FRAME, "skip_duplicates": True})
    select_frames(tmp_path / "still.csv", tmp_path / "still", tmp_path / "chosen.csv", frames_per_video=100)
    kept = [row["frame_index"] for row in read_csv(tmp_path / "still.csv") if row["kept"] == "true"]
    assert [row["frame_index"] for row in read_csv(tmp_path / "chosen.csv")] == kept
    assert len(kept) < 10


def test_missing_frame_is_reported_by_path(tmp_path, three_scenes):
    frames_dir, manifest = three_scenes
    (frames_dir / "scenes_000030.jpg").unlink()
    with pytest.raises(InputError) as error:
        select_frames(manifest, frames_dir, tmp_path / "out.csv", frames_per_video=3)
    assert error.value.where == str(frames_dir / "scenes_000030.jpg")


def test_labelling_folder_gathers_frames_classes_and_the_command(tmp_path, capsys):
    root = tmp_path / "my project"
    selections, frame_dirs = [], []
    for name in ("alpha", "beta"):
        video = write_video(root / "videos" / f"{name}.mp4", 12)
        extract_frames([video], root / "frames" / name, root / "frames" / f"{name}.csv", **EVERY_FRAME)
        selections.append(root / "selected" / f"{name}.csv")
        frame_dirs.append(root / "frames" / name)
        select_frames(root / "frames" / f"{name}.csv", frame_dirs[-1], selections[-1], frames_per_video=4)
    before = file_hashes(root / "frames")
    images, classes, command_file = root / "label" / "images", root / "label" / "classes.txt", root / "label" / "cmd"
    save_dir = root / "my labels"
    command = labelling_folder(selections, frame_dirs, images, classes, command_file, classes=["grab", "drop"],
                               save_dir=save_dir)
    chosen = [row["file"] for selection in selections for row in read_csv(selection)]
    assert sorted(path.name for path in images.iterdir()) == sorted(chosen)
    assert len(chosen) == 8
    for name in chosen:
        video = name.rsplit("_", 1)[0]
        assert (images / name).read_bytes() == (root / "frames" / video / name).read_bytes()
    assert classes.read_text() == "grab\ndrop\n"
    assert shlex.split(command) == ["detflow", "label", "--images", str(images), "--classes", str(classes),
                                    "--save-dir", str(save_dir)]
    assert command_file.read_text() == command + "\n"
    assert capsys.readouterr().out == command + "\n"
    assert file_hashes(root / "frames") == before


def test_labelling_folder_refuses_mismatched_inputs(tmp_path):
    (tmp_path / "alpha.csv").write_text("frame_index,timestamp_s,file\n")
    with pytest.raises(InputError, match="does not belong to frame folder"):
        labelling_folder([tmp_path / "alpha.csv"], [tmp_path / "beta"], tmp_path / "images", tmp_path / "c.txt",
                         tmp_path / "cmd.txt", classes=["grab", "drop"], save_dir=tmp_path / "labels")

"""Frame extraction on real videos written with OpenCV: which frames are kept,
their names and content, the manifest, every container, and bad videos."""
import csv
import subprocess
import sys

import cv2
import pytest

from detflow.frames import extract_frames
from detflow.lib.cli import InputError, options_of
from helpers.media import (
    EVERY_FRAME, decoded_frames, file_hashes, not_a_video, pattern_frame, plums_video, truncated_copy, write_video,
    zero_frame_video,
)


def manifest_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def kept_indices(path):
    return [int(row["frame_index"]) for row in manifest_rows(path) if row["kept"] == "true"]


def folder_bytes(folder):
    return sum(path.stat().st_size for path in folder.iterdir())


def run_extract(tmp_path, video, **options):
    out_dir, manifest = tmp_path / "frames" / "out", tmp_path / "frames" / "out.csv"
    count = extract_frames([video], out_dir, manifest, **{**EVERY_FRAME, **options})
    return out_dir, manifest, count


@pytest.fixture
def clip(tmp_path):
    """40 distinct frames at 10 fps."""
    return write_video(tmp_path / "in" / "clip.mp4", 40)


def test_every_nth_frame_is_written_under_its_source_index(tmp_path, clip):
    out_dir, manifest, count = run_extract(tmp_path, clip, every_nth=3)
    expected = list(range(0, 40, 3))
    assert count == len(expected)
    assert sorted(path.name for path in out_dir.iterdir()) == [f"clip_{index:06d}.jpg" for index in expected]
    source = decoded_frames(clip)
    for index in expected:
        written = cv2.imread(str(out_dir / f"clip_{index:06d}.jpg"))
        assert cv2.PSNR(written, source[index]) > 35  # the named frame, not a neighbour
        assert cv2.PSNR(written, source[index + 1 if index < 39 else index - 1]) < 25
    rows = manifest_rows(manifest)
    assert [int(row["frame_index"]) for row in rows] == expected
    assert [float(row["timestamp_s"]) for row in rows] == pytest.approx([index / 10 for index in expected])
    assert all(row["kept"] == "true" and row["reason"] == "" for row in rows)


def test_target_fps_keeps_one_frame_per_slot(tmp_path):
    video = write_video(tmp_path / "in" / "fast.avi", 60, fps=30)
    _, manifest, _ = run_extract(tmp_path, video, fps=10)
    assert kept_indices(manifest) == list(range(0, 60, 3))


def test_start_end_and_max_frames(tmp_path, clip):
    _, manifest, _ = run_extract(tmp_path, clip, start_s=1.0, end_s=2.5)
    assert kept_indices(manifest) == list(range(10, 25))
    _, manifest, count = run_extract(tmp_path / "second", clip, every_nth=2, start_s=0.5, max_frames=4)
    assert count == 4
    assert kept_indices(manifest) == [6, 8, 10, 12]  # indices divisible by 2 from 0.5 s on


def test_near_duplicates_are_skipped_with_the_reason(tmp_path):
    still = [pattern_frame(0)] * 5 + [pattern_frame(index) for index in range(1, 6)]
    video = write_video(tmp_path / "in" / "still.avi", still)
    out_dir, manifest, count = run_extract(tmp_path, video, skip_duplicates=True, duplicate_threshold=1.5)
    rows = manifest_rows(manifest)
    assert [row["kept"] for row in rows] == ["true"] + ["false"] * 4 + ["true"] * 5
    assert count == 6 == len(list(out_dir.iterdir()))
    for row in rows[1:5]:
        assert row["file"] == ""
        assert row["reason"].startswith("near-duplicate of frame 0 (mean difference")
    _, manifest, count = run_extract(tmp_path / "all", video, skip_duplicates=False)
    assert count == 10


def test_jpeg_quality_is_applied(tmp_path, clip):
    high, _, _ = run_extract(tmp_path / "high", clip, jpeg_quality=95)
    low, _, _ = run_extract(tmp_path / "low", clip, jpeg_quality=20)
    assert folder_bytes(low) < 0.5 * folder_bytes(high)


@pytest.mark.parametrize("extension", [".mp4", ".avi", ".mov", ".mkv"])
def test_every_container(tmp_path, extension):
    video = write_video(tmp_path / "in" / f"clip{extension}", 20)
    out_dir, manifest, count = run_extract(tmp_path, video, every_nth=5)
    assert count == 4
    assert kept_indices(manifest) == [0, 5, 10, 15]
    assert cv2.PSNR(cv2.imread(str(out_dir / "clip_000010.jpg")), pattern_frame(10)) > 25


def test_real_footage(tmp_path, plums):
    video = tmp_path / "in" / "orchard row.avi"
    sources = plums_video(video, plums)
    out_dir, manifest, count = run_extract(tmp_path, video)
    assert count == len(sources) == 60
    for index in (0, 17, 59):
        written = cv2.imread(str(out_dir / f"orchard_row_{index:06d}.jpg"))
        assert cv2.PSNR(written, cv2.imread(str(sources[index]))) > 28
    assert float(manifest_rows(manifest)[-1]["timestamp_s"]) == pytest.approx(59 / 5)
    _, _, count = run_extract(tmp_path / "deduplicated", video, skip_duplicates=True, duplicate_threshold=1.5)
    assert 50 <= count <= 60  # a hand-held camera: consecutive frames differ


def empty_file(path):
    path.write_bytes(b"")
    return path


def bad_videos(folder):
    good = write_video(folder / "good.avi", 30)
    return {
        "truncated mp4": (truncated_copy(write_video(folder / "whole.mp4", 30), folder / "cut.mp4"),
                          "not a video OpenCV can read"),
        "truncated avi": (truncated_copy(good, folder / "cut.avi"), "decoding stopped at frame"),
        "zero-frame avi": (zero_frame_video(folder / "empty.avi"), "no frame could be decoded"),
        "zero-frame mp4": (zero_frame_video(folder / "empty.mp4"), "not a video OpenCV can read"),
        "text file": (not_a_video(folder / "notes.mkv"), "not a video OpenCV can read"),
        "empty file": (empty_file(folder / "nothing.mov"), "empty file"),
    }


@pytest.mark.parametrize("case", ["truncated mp4", "truncated avi", "zero-frame avi", "zero-frame mp4",
                                  "text file", "empty file"])
def test_bad_video_is_refused_by_name_and_left_unchanged(tmp_path, case):
    video, reason = bad_videos(tmp_path / "in")[case]
    before = file_hashes(tmp_path / "in")
    with pytest.raises(InputError) as error:
        run_extract(tmp_path, video)
    assert error.value.where == str(video)
    assert reason in error.value.reason
    assert not (tmp_path / "frames" / "out").exists()  # no partial output
    assert not (tmp_path / "frames" / "out.csv").exists()
    assert file_hashes(tmp_path / "in") == before


def test_two_files_with_one_name_are_refused_naming_both(tmp_path):
    first, second = write_video(tmp_path / "in" / "take.avi", 5), write_video(tmp_path / "in" / "take.mp4", 5)
    with pytest.raises(InputError) as error:
        extract_frames([first, second], tmp_path / "out", tmp_path / "out.csv", **EVERY_FRAME)
    assert str(first) in str(error.value) and str(second) in str(error.value)
    assert "same name apart from its extension" in error.value.reason


def test_two_names_with_one_safe_name_are_refused(tmp_path):
    first, second = write_video(tmp_path / "in" / "a b.mp4", 5), write_video(tmp_path / "in" / "a_b.mp4", 5)
    with pytest.raises(InputError) as error:
        extract_frames([first, second], tmp_path / "out", tmp_path / "out.csv", **EVERY_FRAME)
    assert error.value.where == str(first)
    assert f"{second} has a name that differs only in characters" in error.value.reason
    assert "'a_b'" in error.value.reason


def test_time_range_without_frames_is_refused(tmp_path, clip):
    with pytest.raises(InputError, match="no frame between start_s=10"):
        run_extract(tmp_path, clip, start_s=10)


def test_command_line_error_is_one_line_without_traceback(tmp_path):
    video = not_a_video(tmp_path / """my clip; $HOME 'single' "double" été.mp4""")
    result = subprocess.run([sys.executable, "-m", "detflow.frames", str(video), "--out-dir", str(tmp_path / "out"),
                             "--manifest", str(tmp_path / "out.csv"), *options_of(EVERY_FRAME)], capture_output=True,
                            text=True)
    assert result.returncode == 1
    assert f"error: {video}: not a video OpenCV can read" in result.stderr
    assert "Traceback" not in result.stderr


def test_command_line_names_frames_by_the_safe_video_id(tmp_path):
    video = write_video(tmp_path / "in" / """my clip; $HOME 'single' "double" été.mp4""", 6)
    result = subprocess.run([sys.executable, "-m", "detflow.frames", str(video), "--out-dir", str(tmp_path / "out"),
                             "--manifest", str(tmp_path / "out.csv"), *options_of({**EVERY_FRAME, "every_nth": 2})],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        f"my_clip_HOME_single_double_été_{index:06d}.jpg" for index in (0, 2, 4)]


def test_output_folder_with_files_is_refused(tmp_path, clip):
    (tmp_path / "frames" / "out").mkdir(parents=True)
    (tmp_path / "frames" / "out" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        run_extract(tmp_path, clip)
    assert (tmp_path / "frames" / "out" / "keep.txt").read_text() == "mine"


def test_frames_identical_across_runs(tmp_path, clip):
    first, _, _ = run_extract(tmp_path / "a", clip, every_nth=4, threads=1)
    second, _, _ = run_extract(tmp_path / "b", clip, every_nth=4, threads=4)
    assert len(file_hashes(first)) == 10
    assert file_hashes(first) == file_hashes(second)

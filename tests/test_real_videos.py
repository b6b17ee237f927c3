"""Frame extraction on videos as cameras and phones make them, written with FFmpeg: variable frame
rate (MP4, Matroska), rotation metadata, a raw H.264 stream without timestamps, a truncated file; and
video names the file system or Snakemake refuse (too long, a broken link, a periodic name)."""
import csv
import os
import shutil
import subprocess
import sys

import cv2
import pytest

from detflow.frames import extract_frames
from detflow.lib.cli import InputError, options_of
from detflow.lib.data.videos import MAX_ID_BYTES, frame_id, video_id
from helpers.media import EVERY_FRAME, file_hashes, truncated_copy
from helpers.system import apt_install
from helpers.workflow import WorkflowCopy

TEST_SOURCE = "testsrc=size=160x120:rate=30:duration=2"
# Frames 0-9, then every third one: 26 frames of 2 s, 33 to 100 ms apart.
VARIABLE_RATE = ["-vf", r"select='lt(n\,10)+not(mod(n\,3))'", "-vsync", "vfr"]
H264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p"]


@pytest.fixture(scope="module")
def ffmpeg():
    """The ffmpeg command, installed with apt-get where missing (as root)."""
    if shutil.which("ffmpeg") is None:
        reason = apt_install(["ffmpeg"])
        if reason:
            pytest.skip(reason)
    return shutil.which("ffmpeg")


def make(ffmpeg, path, *arguments, source=TEST_SOURCE):
    """Write ``path`` with ffmpeg from a lavfi test pattern (or from a file given as ``source``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    inputs = ["-i", str(source)] if os.path.exists(str(source)) else ["-f", "lavfi", "-i", source]
    subprocess.run([ffmpeg, "-hide_banner", "-loglevel", "error", "-y", *inputs, *arguments, str(path)], check=True)
    return path


def manifest_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def extract(tmp_path, video, **options):
    out_dir, manifest = tmp_path / "frames" / "out", tmp_path / "frames" / "out.csv"
    return out_dir, manifest, extract_frames([video], out_dir, manifest, **{**EVERY_FRAME, **options})


def command_line(video, tmp_path, *options):
    return subprocess.run([sys.executable, "-m", "detflow.frames", str(video), "--out-dir", str(tmp_path / "out"),
                           "--manifest", str(tmp_path / "out.csv"), *options_of(EVERY_FRAME), *options],
                          capture_output=True, text=True)


@pytest.mark.parametrize("extension", [".mp4", ".mkv"])
def test_variable_frame_rate_keeps_its_timestamps(tmp_path, ffmpeg, extension, caplog):
    video = make(ffmpeg, tmp_path / "in" / f"phone{extension}", *VARIABLE_RATE, *H264)
    before = file_hashes(tmp_path / "in")
    caplog.set_level("INFO")
    out_dir, manifest, count = extract(tmp_path, video, fps=2)
    rows = manifest_rows(manifest)
    # One frame per half second of the stream's own timestamps: 0, 0.5, 1.0, 1.5 s.
    assert [float(row["timestamp_s"]) for row in rows] == pytest.approx([0.0, 0.5, 1.0, 1.5], abs=0.01)
    assert count == 4 and len(list(out_dir.iterdir())) == 4
    assert {(row["timestamp_from"], row["source"]) for row in rows} == {("stream", video.name)}
    assert "variable frame rate (frames 33 to 100 ms apart)" in caplog.text
    if extension == ".mkv":  # Matroska declares no frame count: OpenCV's is duration x nominal rate
        assert "the file declares 58 frames, an estimate" in caplog.text
    _, every, count = extract(tmp_path / "every", video, every_nth=5)
    assert count == 6  # frame indices 0, 5, ..., 25 of the 26 frames
    assert file_hashes(tmp_path / "in") == before


def test_rotated_phone_video_comes_out_upright(tmp_path, ffmpeg, caplog):
    plain = make(ffmpeg, tmp_path / "made" / "landscape.mp4", *H264, source="testsrc=size=160x120:rate=10:duration=1")
    video = make(ffmpeg, tmp_path / "in" / "portrait.mp4", "-c", "copy", "-metadata:s:v", "rotate=90", source=plain)
    upright = make(ffmpeg, tmp_path / "made" / "upright.png", "-frames:v", "1", source=video)  # ffmpeg turns it
    before = file_hashes(tmp_path / "in")
    caplog.set_level("INFO")
    out_dir, _, count = extract(tmp_path, video, every_nth=5)
    assert count == 2
    frame = cv2.imread(str(out_dir / "portrait_000000.jpg"))
    assert frame.shape[:2] == (160, 120)  # portrait
    upright = cv2.imread(str(upright))
    assert cv2.PSNR(frame, upright) > 20  # turned the way ffmpeg turns it (JPEG loss on sharp edges)
    assert cv2.PSNR(frame, cv2.rotate(upright, cv2.ROTATE_180)) < 10  # not the other way up
    assert "turned upright as its rotation metadata (270 degrees) says: frames are 120x160" in caplog.text
    assert file_hashes(tmp_path / "in") == before


def test_raw_stream_without_timestamps_counts_time_by_frame_index(tmp_path, ffmpeg):
    """A raw H.264 stream (.h264 is not among videos.extensions, so through the command line): OpenCV
    reports 0 ms for every frame and guesses 25 fps."""
    video = make(ffmpeg, tmp_path / "in" / "dashcam.h264", *H264, "-f", "h264",
                 source="testsrc=size=160x120:rate=25:duration=2.4")
    before = file_hashes(tmp_path / "in")
    result = command_line(video, tmp_path, "--fps", "2")
    assert result.returncode == 0, result.stderr
    rows = manifest_rows(tmp_path / "out.csv")
    assert [int(row["frame_index"]) for row in rows] == [0, 13, 25, 38, 50]  # not 1 frame of 60
    assert [row["timestamp_from"] for row in rows] == ["stream"] + ["index at 25 fps"] * 4
    warnings = [line for line in result.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 2 and all(str(video) in line for line in warnings)
    assert "frames from 1 on carry no usable timestamp" in warnings[0]
    assert "declares no frame count or duration: a truncated end cannot be recognised" in warnings[1]
    assert file_hashes(tmp_path / "in") == before


def test_truncated_file_is_refused_by_name(tmp_path, ffmpeg):
    whole = make(ffmpeg, tmp_path / "made" / "whole.mkv", *H264, source="testsrc=size=160x120:rate=10:duration=6")
    (tmp_path / "in").mkdir()
    video = truncated_copy(whole, tmp_path / "in" / "cut.mkv")
    before = file_hashes(tmp_path / "in")
    with pytest.raises(InputError) as error:
        extract(tmp_path, video)
    assert error.value.where == str(video)
    assert error.value.reason.startswith("decoding stopped at frame")
    assert error.value.reason.endswith("of the 6.00 s the file declares (truncated or corrupt video)")
    assert not (tmp_path / "frames" / "out").exists() and not (tmp_path / "frames" / "out.csv").exists()
    result = command_line(video, tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"error: {video}: decoding stopped at frame" in result.stderr
    assert file_hashes(tmp_path / "in") == before


def test_long_name_is_shortened_with_a_hash_and_kept_in_the_manifest(tmp_path, ffmpeg):
    name = "Ünterwasser " * 19 + "Ende.mp4"  # 251 bytes
    assert len(name.encode()) > 250
    video = make(ffmpeg, tmp_path / "videos" / name, *H264, source="testsrc=size=160x120:rate=10:duration=1")
    before = file_hashes(tmp_path / "videos")
    workflow = WorkflowCopy(tmp_path / "project")
    (tmp_path / "labels").mkdir()
    workflow.set_config(videos={"dir": str(tmp_path / "videos")}, annotations={"dir": str(tmp_path / "labels")})
    name_id = video_id(video)
    assert len(name_id.encode()) <= MAX_ID_BYTES and name_id == frame_id(f"{name_id}_000000.jpg")[:-7]
    result = workflow.snakemake(f"results/frames/{name_id}.csv", check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    frames = sorted(frame.name for frame in (workflow.root / "results/frames" / name_id).glob("*.jpg"))
    assert frames and all(len(frame.encode()) <= 255 for frame in frames)
    rows = manifest_rows(workflow.root / f"results/frames/{name_id}.csv")
    assert [row["file"] for row in rows if row["kept"] == "true"] == frames
    assert {row["source"] for row in rows} == {name}  # the original file name stays traceable
    assert file_hashes(tmp_path / "videos") == before


def refused_at_start_up(tmp_path, prepare):
    """Snakemake's dry run on a video folder prepared by ``prepare(folder)``: its output, which must be a refusal."""
    folder = tmp_path / "videos"
    folder.mkdir()
    prepare(folder)
    before = file_hashes(folder)
    workflow = WorkflowCopy(tmp_path / "project")
    (tmp_path / "labels").mkdir()
    workflow.set_config(videos={"dir": str(folder)}, annotations={"dir": str(tmp_path / "labels")})
    result = workflow.snakemake("-n", "labelling", check=False)
    assert result.returncode != 0 and "Traceback" not in result.stdout
    assert file_hashes(folder) == before
    return folder, result.stdout


def test_broken_link_is_named(tmp_path, ffmpeg):
    def prepare(folder):
        make(ffmpeg, folder / "good.mp4", *H264, source="testsrc=size=160x120:rate=10:duration=1")
        (folder / "holiday.mp4").symlink_to(tmp_path / "unplugged disk" / "holiday.mp4")

    folder, output = refused_at_start_up(tmp_path, prepare)
    assert (f"{folder / 'holiday.mp4'}: broken symbolic link (its target {tmp_path / 'unplugged disk' / 'holiday.mp4'}"
            " does not exist); restore the target or remove the link") in output


def test_name_snakemake_takes_for_a_recursion_is_refused_by_us(tmp_path, ffmpeg):
    name = "a_" * 24 + "a.mp4"

    def prepare(folder):
        make(ffmpeg, folder / name, *H264, source="testsrc=size=160x120:rate=10:duration=1")

    folder, output = refused_at_start_up(tmp_path, prepare)
    assert (f"{folder / name}: its video name '{name[:-4]}' ends in '_a' repeated 24 times, which Snakemake refuses "
            "in file names") in output
    assert "periodically repeated" not in output


def test_predicting_a_variable_frame_rate_video_times_it_as_extraction_does_and_calls_it_complete(
        tmp_path, ffmpeg, model):
    """The prediction stage judges a video's end as the frames stage does: by its timestamps, so a
    Matroska file whose declared frame count is an estimate is complete."""
    from detflow import predict
    from helpers.config import BATCH, EVENTS
    from helpers.models import detector

    video = make(ffmpeg, tmp_path / "in" / "phone.mkv", *VARIABLE_RATE, *H264)
    content = predict.predict_video(detector(model), [video], tmp_path / "out.mp4", tmp_path / "out.csv",
                                    tmp_path / "out.json", event_settings=EVENTS, stride=1, batch_size=BATCH)
    assert content["complete"] and content["frames_decoded"] == content["frames_predicted"] == 26
    _, manifest, _ = extract(tmp_path, video)
    assert [frame["timestamp_s"] for frame in content["frames"]] == [
        float(row["timestamp_s"]) for row in manifest_rows(manifest)]

"""Live detection (python -m detflow.live) on real sources: a video file played in real time, an
HTTP MJPEG stream served on 127.0.0.1 by ffmpeg (stopped by its PID mid-way), Ctrl+C, a window on a
private X display looked at with a screenshot, and sources that cannot be opened."""
import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from detflow import live
from detflow.lib.cli import InputError, options_of
from detflow.lib.inference.events import EVENT_COLUMNS, EventSettings
from helpers.config import config_options
from helpers.desktop import screenshot
from helpers.media import EVERY_FRAME, decoded_frames, write_video, zero_frame_video
from helpers.workflow import REPO

FPS = 15
SETTINGS = EventSettings(min_frames=2, max_gap=2, track_iou=0.3, merge_iou=0.5)
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="module")
def detector(model_path):
    from detflow.lib.inference.detector import Detector, load_inference_model
    from helpers.models import CARD

    return Detector(load_inference_model(model_path, CARD), CARD, score_threshold=0.5)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Three seconds of pattern frames at 15 frames/s."""
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", 3 * FPS, fps=FPS)


def command(model_path, *args):
    return [sys.executable, "-m", "detflow.live", "--model", str(model_path), "--threads", "1",
            "--config", str(REPO / "config.yaml"), *args]


def wait_for(path, text, process, timeout=180):
    """Wait until the log file at ``path`` contains ``text`` (the process still running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text():
            return
        assert process.poll() is None, path.read_text()[-2000:]
        time.sleep(0.2)
    raise AssertionError(f"no {text!r} within {timeout} s: {path.read_text()[-2000:]}")


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def final_line(stdout):
    return next(line for line in stdout.splitlines() if line.startswith("live: "))


def read_csv(path):
    with open(path, newline="") as stream:
        return list(csv.reader(stream))


def test_a_file_played_in_real_time_drops_what_the_detector_cannot_take(detector, clip, tmp_path):
    reader = live.NewestFrame(live.Source(str(clip)), paced=True, lossless=False, reconnects=0, reconnect_delay=0)
    reader.start()
    summary = live.live(detector, reader, settings=SETTINGS, out_video=tmp_path / "out.mp4",
                        events_path=tmp_path / "events.json")
    assert summary["ended"] == "end of the video file" and not summary["source_lost"]
    assert summary["frames_read"] == 3 * FPS
    assert summary["frames_processed"] + summary["frames_dropped"] == summary["frames_read"]
    assert summary["frames_processed"] <= summary["seconds"] * FPS + 2  # never faster than the file plays
    assert len(decoded_frames(tmp_path / "out.mp4")) == summary["frames_processed"]
    written = json.loads((tmp_path / "events.json").read_text())
    assert written["frames_processed"] == summary["frames_processed"]
    assert sum(written["events_per_class"].values()) == len(written["events"])


def test_without_pacing_every_frame_of_a_file_is_detected(detector, clip, tmp_path):
    reader = live.NewestFrame(live.Source(str(clip)), paced=False, lossless=True, reconnects=0, reconnect_delay=0)
    reader.start()
    summary = live.live(detector, reader, settings=SETTINGS, max_frames=20)
    assert (summary["frames_processed"], summary["frames_dropped"]) == (20, 0)
    assert summary["ended"] == "--max-frames 20 reached"


def test_command_line_on_a_file_writes_the_annotated_video_and_events_csv(model_path, clip, tmp_path):
    done = subprocess.run(command(model_path, "--source", str(clip), "--no-window", "--max-frames", "8",
                                  "--out", str(tmp_path / "out.mp4"), "--events", str(tmp_path / "events.csv")),
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    line = final_line(done.stdout)
    assert "frames processed" in line and "dropped" in line and "ended: --max-frames 8 reached" in line
    frames = decoded_frames(tmp_path / "out.mp4")
    assert len(frames) == 8 and frames[0].shape == (120, 160, 3)
    assert tuple(read_csv(tmp_path / "events.csv")[0]) == EVENT_COLUMNS


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def mjpeg_stream(clip):
    """An HTTP MJPEG stream of the clip, looped in real time by ffmpeg on 127.0.0.1: (URL, server)."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("needs ffmpeg")
    url = f"http://127.0.0.1:{free_port()}/live.mjpg"
    server = subprocess.Popen(["ffmpeg", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(clip),
                               "-f", "mpjpeg", "-q:v", "5", "-listen", "1", url],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # until it listens
    yield url, server
    if server.poll() is None:
        server.kill()
        server.wait(timeout=10)


def test_an_http_stream_that_dies_is_reconnected_then_ended_with_complete_outputs(model_path, mjpeg_stream, tmp_path):
    url, server = mjpeg_stream
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        process = subprocess.Popen(command(model_path, "--source", url, "--no-window", "--reconnects", "2",
                                           "--reconnect-delay", "0.2", "--out", str(tmp_path / "out.mp4"),
                                           "--events", str(tmp_path / "events.json")),
                                   stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=tmp_path)
        wait_for(log, "detecting on", process)
        time.sleep(2)  # frames arrive in real time meanwhile
        os.kill(server.pid, signal.SIGKILL)
        stdout, _ = process.communicate(timeout=120)
    stderr = log.read_text()
    assert process.returncode == 1, stderr[-2000:]
    assert stderr.count("reconnecting (attempt") == 2
    assert error_lines(stderr) == [f"error: {url}: the source stopped delivering frames and 2 reconnection attempts "
                                   "failed; the outputs hold everything up to there"]
    assert "Traceback" not in stderr
    summary = json.loads((tmp_path / "events.json").read_text())
    assert summary["frames_processed"] > 5 and summary["source_lost"]
    assert len(decoded_frames(tmp_path / "out.mp4")) == summary["frames_processed"]
    assert final_line(stdout).startswith(f"live: {summary['frames_processed']} frames processed")


def test_ctrl_c_ends_the_run_with_complete_outputs(model_path, tmp_path):
    long_clip = write_video(tmp_path / "long.mp4", 20 * FPS, fps=FPS)
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        process = subprocess.Popen(command(model_path, "--source", str(long_clip), "--no-window",
                                           "--out", str(tmp_path / "out.mp4"), "--events", str(tmp_path / "e.csv")),
                                   stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=tmp_path)
        wait_for(log, "detecting on", process)
        time.sleep(1.5)
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=60)
    assert process.returncode == 0, log.read_text()[-2000:]
    line = final_line(stdout)
    assert line.endswith("ended: stopped by Ctrl+C")
    processed = int(line.split()[1])
    assert 0 < processed < 20 * FPS
    assert len(decoded_frames(tmp_path / "out.mp4")) == processed
    assert tuple(read_csv(tmp_path / "e.csv")[0]) == EVENT_COLUMNS


def test_sources_that_cannot_be_opened_are_said_in_one_line(model_path, tmp_path):
    with pytest.raises(InputError, match="no camera with this index"):
        live.Source("7").open()
    started = time.monotonic()
    with pytest.raises(InputError, match="stream cannot be opened"):
        live.Source(f"http://127.0.0.1:{free_port()}/nothing.mjpg").open()
    assert time.monotonic() - started < 10
    with pytest.raises(InputError, match="video file not found"):
        live.main(["--source", str(tmp_path / "missing.mp4"), "--model", str(model_path)])
    done = subprocess.run(command(model_path, "--source", "7", "--no-window"), capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 1
    assert error_lines(done.stderr) == ["error: camera 7: no camera with this index can be opened (none connected, "
                                        "or in use by another program)"]
    assert "[ WARN" not in done.stderr and "Traceback" not in done.stderr  # OpenCV's own messages are off


def test_a_source_without_frames_is_refused_by_every_entry_point_alike(model_path, tmp_path):
    """A 0-frame file used to end live with exit 0, "0 frames processed" and no --out video; the frames
    stage refused it. Now the frames stage, video prediction and live refuse it with the same line."""
    empty = zero_frame_video(tmp_path / "nothing.avi")
    out = tmp_path / "out"
    commands = {
        "frames": [sys.executable, "-m", "detflow.frames", str(empty), "--out-dir", str(out / "frames"),
                   "--manifest", str(out / "frames.csv"), *options_of(EVERY_FRAME)],
        "predict": [sys.executable, "-m", "detflow.predict", "video", str(model_path), str(empty), "--out-video",
                    str(out / "a.mp4"), "--csv", str(out / "a.csv"), "--json", str(out / "a.json"),
                    *config_options("predict", "score_threshold", "batch_size", "video_stride"),
                    *config_options("events")],
        "live": command(model_path, "--source", str(empty), "--no-window", "--out", str(out / "live.mp4")),
    }
    for name, arguments in commands.items():
        done = subprocess.run(arguments, capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert done.returncode == 1, (name, done.stderr[-2000:])
        assert error_lines(done.stderr) == [f"error: {empty}: no frame could be decoded (a zero-frame, corrupt or "
                                            "truncated video)"], name
        assert "Traceback" not in done.stderr
    assert not out.exists() or not any(out.rglob("*"))
    folder = subprocess.run(command(model_path, "--source", str(tmp_path), "--no-window"), capture_output=True,
                            text=True, timeout=300, cwd=tmp_path)
    assert folder.returncode == 1 and error_lines(folder.stderr) == [f"error: {tmp_path}: is a folder, not a video file"]


def test_the_window_shows_boxes_and_frames_per_second(model_path, clip, display, tmp_path):
    long_clip = write_video(tmp_path / "long.mp4", 20 * FPS, fps=FPS, size=(320, 240))
    env = {**os.environ, **display}
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        process = subprocess.Popen(command(model_path, "--source", str(long_clip)),
                                   stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=tmp_path, env=env)
        wait_for(log, "detecting on", process)
        window = subprocess.run(["xdotool", "search", "--sync", "--onlyvisible", "--name", "^detflow live"],
                                env=env, capture_output=True, text=True, timeout=60).stdout.split()[0]
        time.sleep(2)
        geometry = dict(line.split("=") for line in subprocess.run(
            ["xdotool", "getwindowgeometry", "--shell", window], env=env, capture_output=True, text=True,
            timeout=60, check=True).stdout.split())
        ARTIFACTS.mkdir(exist_ok=True)
        shot = screenshot(display, ARTIFACTS / "live_window.png")
        subprocess.run(["xdotool", "windowfocus", "--sync", window, "key", "q"], env=env, timeout=60, check=True)
        stdout, _ = process.communicate(timeout=60)
    assert process.returncode == 0, log.read_text()[-2000:]
    assert final_line(stdout).endswith("ended: window closed")
    x, y, width, height = (int(geometry[key]) for key in ("X", "Y", "WIDTH", "HEIGHT"))
    assert (width, height) == (320, 240)
    shown = shot[y:y + height, x:x + width]
    # The frame: the pattern's colour ramp, with the dark status label ("... frames/s  dropped ...") top left.
    label = shown[2:12, 2:60].reshape(-1, 3)
    assert (label.max(axis=1) < 60).mean() > 0.5 and (label.min(axis=1) > 200).any(), "no status label"
    assert shown[120:, 160:].std() > 20, "no video frame in the window"

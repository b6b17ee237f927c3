"""New footage: the videos of predict.new_videos_dir annotated by the workflow (a real job with the tests'
tiny model), never trained on (its dry run), and the folders refused at start-up. And
``python -m detflow.predict SOURCE...`` by hand on real videos and images: files, a folder, a quoted glob,
HTTP MJPEG streams served on 127.0.0.1 by a server the test starts (read to their end, to --max-frames,
to Ctrl+C), the numbered run folders, --out, and every bad SOURCE refused in one line with nothing written."""
import http.server
import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import cv2
import pytest

from detflow import predict
from detflow.lib.cli import InputError, run
from detflow.lib.data.sources import Item, find_sources
from helpers.config import BATCH, CONFIG, EVENTS
from helpers.media import decoded_frames, not_a_video, write_image, write_video, zero_frame_video
from helpers.models import detector
from helpers.workflow import REPO, TINY_DEMO

NEW_OUTPUTS = (".mp4", ".csv", ".json", ".events.csv", ".events.json")


@pytest.fixture
def new_footage(tmp_path):
    """A folder of two new recordings (and a file that is no video)."""
    folder = tmp_path / "new footage"
    write_video(folder / "hall way.mp4", 8)
    write_video(folder / "door.avi", 6)
    (folder / "notes.txt").write_text("recorded on Monday\n")
    return folder


def planned_jobs(plan):
    """{rule: [the text of each of its jobs]} of a dry run's output."""
    jobs = {}
    for rule, text in re.findall(r"^(?:local)?rule (\w+):\n(.*?)(?=^\S|\Z)", plan, re.MULTILINE | re.DOTALL):
        jobs.setdefault(rule, []).append(text)
    return jobs


def test_new_footage_is_planned_for_prediction_only(workflow_copy, new_footage):
    workflow_copy.set_config(demo=TINY_DEMO, predict={"new_videos_dir": str(new_footage)})
    jobs = planned_jobs(workflow_copy.snakemake("-n").stdout)
    assert sorted(re.search(r"wildcards: new_video=(\S+)", text)[1] for text in jobs["predict_new_video"]) == [
        "door", "hall_way"]
    assert len(jobs["predict_video"]) == len(jobs["extract_frames"]) == TINY_DEMO["videos"]
    for rule, texts in jobs.items():  # no frames, labelling, dataset, training or report job reads them
        if rule not in ("predict_new_video", "all"):
            assert not any(str(new_footage) in text or "hall_way" in text or "door" in text for text in texts), rule
    assert "predict_new_video" not in workflow_copy.dry_run_jobs("results/model/inference.h5")


def test_new_footage_gets_annotated_video_detections_and_events(workflow_copy, new_footage, model_path):
    """The job itself, with a ready model in place of the trained one (only this rule may run)."""
    workflow_copy.set_config(demo=TINY_DEMO, predict={"new_videos_dir": str(new_footage)})
    root = workflow_copy.root
    (root / "results" / "model").mkdir(parents=True)
    shutil.copy(model_path, root / "results" / "model" / "inference.h5")
    workflow_copy.snakemake("--allowed-rules", "predict_new_video", "--", "results/predictions/new/door.mp4")
    out = root / "results" / "predictions" / "new"
    assert sorted(path.name for path in out.iterdir()) == [f"door{ending}" for ending in sorted(NEW_OUTPUTS)]
    content = json.loads((out / "door.json").read_text())
    assert content["video"] == str(new_footage / "door.avi") and content["frames_predicted"] == 6
    assert len(decoded_frames(out / "door.mp4")) == 6
    assert (root / "logs" / "predict_new_video" / "door.log").exists()
    assert not (root / "results" / "frames").exists()


@pytest.mark.parametrize("case", ["missing", "empty", "videos.dir", "a file"])
def test_a_new_footage_folder_that_cannot_be_is_refused_at_start_up(workflow_copy, tmp_path, case):
    videos, labels = tmp_path / "videos", tmp_path / "labels"
    write_video(videos / "take.mp4", 4)
    labels.mkdir()
    folder = {"missing": tmp_path / "nowhere", "empty": tmp_path / "empty", "videos.dir": videos / ".." / "videos",
              "a file": videos / "take.mp4"}[case]
    if case == "empty":
        folder.mkdir()
        (folder / "notes.txt").write_text("no videos yet\n")
    workflow_copy.set_config(videos={"dir": str(videos)}, annotations={"dir": str(labels)},
                             predict={"new_videos_dir": str(folder)})
    result = workflow_copy.snakemake("-n", check=False)
    reason = {"missing": "folder not found", "empty": "no videos in this folder (looked for .avi, .mkv, .mov, .mp4)",
              "videos.dir": f"is the folder of the training videos (videos.dir: {videos}); new footage is never "
                            "trained on, so it needs a folder of its own",
              "a file": "is a file, not a folder"}[case]
    assert result.returncode != 0 and "Traceback" not in result.stdout
    assert f"invalid configuration: config: predict.new_videos_dir: {folder}: {reason}" in result.stdout
    assert not (workflow_copy.root / "results").exists()


# ---------------------------------------------------------------- predict SOURCE...

EXTENSIONS = CONFIG["videos"]["extensions"]


class MjpegServer(http.server.ThreadingHTTPServer):
    """An HTTP MJPEG stream of a real video's frames on 127.0.0.1: /clip.mjpg sends them once and ends,
    /endless.mjpg repeats them at 30 frames/s until the reader goes. ``sent`` counts the frames of each
    request, in order."""

    def __init__(self, video):
        super().__init__(("127.0.0.1", 0), MjpegHandler)
        self.frames = [cv2.imencode(".jpg", frame)[1].tobytes() for frame in decoded_frames(video)]
        self.sent = []

    def url(self, name):
        return f"http://127.0.0.1:{self.server_address[1]}/{name}"


class MjpegHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        endless = self.path == "/endless.mjpg"
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace;boundary=frame")
        self.end_headers()
        number = len(self.server.sent)
        self.server.sent.append(0)
        try:
            while True:
                for data in self.server.frames:
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n"
                                     % (len(data), data))
                    self.server.sent[number] += 1
                    if endless:
                        time.sleep(1 / 30)
                if not endless:
                    return
        except (BrokenPipeError, ConnectionResetError):
            return  # the reader has gone

    def log_message(self, *_):
        pass


@pytest.fixture
def mjpeg(tmp_path):
    """The MJPEG server of a 12-frame video, started in a thread and shut down at the end."""
    server = MjpegServer(write_video(tmp_path / "served.avi", 12))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def footage(tmp_path):
    """A project folder with real videos and images: clips/a.mp4, more/ (two videos, an image, notes and a
    subfolder), globbed/*.mp4."""
    project = tmp_path / "project"
    write_video(project / "clips" / "a.mp4", 10)
    write_video(project / "more" / "b take.avi", 7)
    write_video(project / "more" / "c.mkv", 5)
    write_image(project / "more" / "photo.jpg", seed=1)
    (project / "more" / "notes.txt").write_text("not a source\n")
    write_video(project / "more" / "older" / "d.mp4", 4)  # subfolders are not read
    write_video(project / "globbed" / "e.mp4", 6)
    write_video(project / "globbed" / "f.mp4", 3)
    write_video(project / "globbed" / "g.avi", 3)
    return project


def predict_command(model_path, *arguments):
    return [sys.executable, "-m", "detflow.predict", *arguments, "--model", str(model_path), "--threads", "1",
            "--config", str(REPO / "config.yaml")]


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_sources_are_files_folders_globs_and_streams(footage, mjpeg, monkeypatch):
    monkeypatch.chdir(footage)
    items = find_sources(["clips/a.mp4", "more", "globbed/*.mp4", "more/c.mkv", mjpeg.url("clip.mjpg")], EXTENSIONS)
    assert items == [Item("video", "clips/a.mp4"), Item("video", "more/b take.avi"), Item("video", "more/c.mkv"),
                     Item("image", "more/photo.jpg"), Item("video", "globbed/e.mp4"), Item("video", "globbed/f.mp4"),
                     Item("stream", mjpeg.url("clip.mjpg"))]  # in order, each once, subfolders and notes left out
    assert [item.name for item in items] == ["a", "b_take", "c", "photo", "e", "f", "127_0_0_1_clip_mjpg"]
    assert predict.output_names([Item("video", "x/clip.mp4"), Item("video", "y/Clip.avi"), Item("image", "clip.png"),
                                 Item("video", "detections.mp4")]) == {
        Item("video", "x/clip.mp4"): "clip", Item("video", "y/Clip.avi"): "Clip_2", Item("image", "clip.png"): "clip",
        Item("video", "detections.mp4"): "detections_2"}


@pytest.mark.parametrize("case, reason", [
    ("missing.mp4", "not found (no such file or folder; a stream is an rtsp://, rtmp:// or http(s):// URL)"),
    ("empty", "no video or image in this folder (looked for .mp4, .avi, .mov, .mkv, .jpg, .jpeg, .png, .bmp)"),
    ("notes.txt", "not a video or image: its ending is none of .mp4, .avi, .mov, .mkv, .jpg, .jpeg, .png, .bmp "
                  "(videos.extensions in config.yaml lists the video endings)"),
    ("notes.mp4", "not a video OpenCV can read (not a video file, or a corrupt, truncated or zero-frame one)"),
    ("nothing.avi", "no frame could be decoded (a zero-frame, corrupt or truncated video)"),
    ("photo.jpg", "not an image that can be read (cannot identify image file 'photo.jpg')"),
    ("nowhere/*.mp4", "no file or folder matches this pattern"),
    ("http://127.0.0.1:9/none.mjpg", "stream cannot be opened (unreachable, refused or not a video stream within 5 s)"),
    ("ftp://127.0.0.1/clip.mp4", "ftp:// is not a stream this command reads (rtsp://, rtmp://, http(s)://)"),
])
def test_a_bad_source_is_refused_in_one_line_and_nothing_is_written(footage, monkeypatch, capsys, case, reason):
    monkeypatch.chdir(footage)
    (footage / "empty").mkdir()
    (footage / "notes.txt").write_text("notes\n")
    not_a_video(footage / "notes.mp4")
    zero_frame_video(footage / "nothing.avi")
    (footage / "photo.jpg").write_text("not a JPEG\n")
    with pytest.raises(SystemExit) as exit:  # the command line, in this process: bad input is said before the model
        run(predict.main, ["clips/a.mp4", case, "--model", "no-model-needed.h5", "--config", str(REPO / "config.yaml")])
    assert exit.value.code == 1
    assert error_lines(capsys.readouterr().err) == [f"error: {case}: {reason}"]
    assert not (footage / "results").exists()


def test_files_a_folder_and_a_glob_go_to_run1_then_run2(model, model_path, footage):
    first = subprocess.run(predict_command(model_path, "clips/a.mp4", "more", "globbed/*.mp4"), capture_output=True,
                           text=True, timeout=600, cwd=footage)
    assert first.returncode == 0, first.stderr[-3000:]
    run1 = footage / "results" / "predict" / "run1"
    lines = first.stdout.splitlines()
    assert lines[-1] == "predict: outputs in results/predict/run1"
    assert lines[0].startswith("images: 1 of 1 predicted") and lines[0].endswith("-> images/, detections.csv, "
                                                                                  "detections.json")
    assert [line.split(":")[0] for line in lines[1:-1]] == ["clips/a.mp4", "more/b take.avi", "more/c.mkv",
                                                            "globbed/e.mp4", "globbed/f.mp4"]
    assert lines[2].startswith("more/b take.avi: 7 frames predicted, ") and lines[2].endswith("-> b_take.mp4")
    names = {"a": 10, "b_take": 7, "c": 5, "e": 6, "f": 3}
    assert sorted(path.name for path in run1.iterdir()) == sorted(
        ["detections.csv", "detections.json", "images"] + [f"{name}{end}" for name in names for end in NEW_OUTPUTS])
    for name, frames in names.items():
        assert len(decoded_frames(run1 / f"{name}.mp4")) == frames
        assert json.loads((run1 / f"{name}.json").read_text())["frames_predicted"] == frames
    expected = predict.predict_video(detector(model), [footage / "clips" / "a.mp4"], footage / "x.mp4",
                                     footage / "x.csv", footage / "x.json", event_settings=EVENTS, stride=1,
                                     batch_size=BATCH)
    assert json.loads((run1 / "a.json").read_text())["frames"] == expected["frames"]  # config's settings
    images = json.loads((run1 / "detections.json").read_text())
    assert [(image["image"], image["file"]) for image in images["images"]] == [("photo", "more/photo.jpg")]
    assert cv2.imread(str(run1 / "images" / "photo.jpg")).shape == (120, 160, 3)
    assert "images: predicting: 1/1 images" in first.stderr and "a.mp4: predicting: 10/10 frames" in first.stderr

    second = subprocess.run(predict_command(model_path, "globbed/*.mp4", "--video-stride", "2"), capture_output=True,
                            text=True, timeout=600, cwd=footage)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.splitlines()[-1] == "predict: outputs in results/predict/run2"
    run2 = footage / "results" / "predict" / "run2"
    assert json.loads((run2 / "e.json").read_text())["frames_predicted"] == 3  # frames 0, 2 and 4 of 6
    assert sorted(path.name for path in (footage / "results" / "predict").iterdir()) == ["run1", "run2"]


def test_streams_are_read_to_their_end_or_max_frames_into_out(model_path, mjpeg, tmp_path):
    finished = subprocess.run(predict_command(model_path, mjpeg.url("clip.mjpg"), mjpeg.url("endless.mjpg"),
                                              "--max-frames", "20", "--out", "streams"),
                              capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr[-3000:]
    lines = finished.stdout.splitlines()
    assert lines[0].startswith(f"{mjpeg.url('clip.mjpg')}: 12 frames predicted, ")
    assert lines[0].endswith("; ended: end of the stream -> 127_0_0_1_clip_mjpg.mp4")
    assert lines[1].startswith(f"{mjpeg.url('endless.mjpg')}: 20 frames predicted, ")
    assert lines[1].endswith("; ended: --max-frames 20 reached -> 127_0_0_1_endless_mjpg.mp4")
    assert lines[2] == "predict: outputs in streams"
    for name, frames in (("127_0_0_1_clip_mjpg", 12), ("127_0_0_1_endless_mjpg", 20)):
        content = json.loads((tmp_path / "streams" / f"{name}.json").read_text())
        assert content["frames_predicted"] == frames == len(decoded_frames(tmp_path / "streams" / f"{name}.mp4"))
        assert json.loads((tmp_path / "streams" / f"{name}.events.json").read_text())["video_id"] == name
    assert not (tmp_path / "results").exists()


def test_ctrl_c_ends_a_stream_with_complete_outputs_and_reads_no_more(model_path, mjpeg, footage):
    process = subprocess.Popen(predict_command(model_path, mjpeg.url("endless.mjpg"), "clips/a.mp4"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=footage)
    deadline = time.monotonic() + 300
    while not (len(mjpeg.sent) > 1 and mjpeg.sent[-1] >= 10):  # the second request: reading, after the check
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-3000:]
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
    lines = stdout.splitlines()
    assert lines[0].endswith("; ended: stopped by Ctrl+C -> 127_0_0_1_endless_mjpg.mp4")
    assert lines[1:] == ["clips/a.mp4: not read (stopped by Ctrl+C)", "predict: outputs in results/predict/run1"]
    run1 = footage / "results" / "predict" / "run1"
    content = json.loads((run1 / "127_0_0_1_endless_mjpg.json").read_text())
    assert content["stopped"] == "stopped by Ctrl+C" and not content["complete"]
    assert content["frames_predicted"] == len(decoded_frames(run1 / "127_0_0_1_endless_mjpg.mp4")) > 0
    assert not list(run1.glob("a.*"))


class StopAfter:
    """A stopper asked to stop (as by Ctrl+C) once it has been asked ``frames`` times whether to."""

    def __init__(self, frames):
        self.frames, self.asked = frames, 0

    @property
    def reason(self):
        self.asked += 1
        return "stopped by Ctrl+C" if self.asked > self.frames else None


def test_a_video_stopped_early_is_complete_up_to_there_and_a_failing_one_leaves_nothing(model, footage, tmp_path):
    clip = footage / "clips" / "a.mp4"
    content = predict.predict_video(detector(model), [clip], tmp_path / "a.mp4", tmp_path / "a.csv",
                                    tmp_path / "a.json", event_settings=EVENTS, stride=1, batch_size=BATCH,
                                    stop=predict.Until(stopper=StopAfter(4)))
    assert (content["frames_predicted"], content["complete"], content["stopped"]) == (4, False, "stopped by Ctrl+C")
    assert len(decoded_frames(tmp_path / "a.mp4")) == 4
    gone = footage / "more" / "c.mkv"
    items = find_sources([str(clip), str(gone)], EXTENSIONS)
    gone.unlink()  # after the check, before it is read
    out = tmp_path / "run"
    with pytest.raises(InputError, match="video file not found"):
        list(predict.predict_sources(detector(model), items, out, event_settings=EVENTS, stride=1, batch_size=BATCH))
    assert sorted(path.name for path in out.iterdir()) == [f"a{ending}" for ending in sorted(NEW_OUTPUTS)]

"""The ML backend that serves the model's boxes to Label Studio (detflow.label_studio_backend), with a small
real model, asked over real HTTP on 127.0.0.1 as Label Studio 1.23 asks it (/health, /setup, /predict,
/webhook); its refusals at start (no model, a model for other classes, a port in use), each one line; and
scripts/label_studio/backend.sh, which starts it in the background and stops it by its PID.

With a real Label Studio server, tests/test_label_studio.py connects it to a project and opens a task.
"""
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from detflow import label_studio_backend as backend_stage
from detflow.lib.labelling.label_studio import local_files_url, model_version
from detflow.lib.metrics.detection_match import compare
from helpers.config import BATCH, CONFIG
from helpers.label_studio import http, in_pixels, inside
from helpers.system import listening
from helpers.workflow import REPO

THRESHOLD = CONFIG["prelabel"]["score_threshold"]  # what the drafts keep, and so the backend
BACKEND_SH = REPO / "scripts" / "label_studio" / "backend.sh"


@pytest.fixture(scope="module")
def served(voc, model_path):
    """The backend on a free port of 127.0.0.1, serving voc's images (its folder as the document root) from a
    thread of this process; shut down at the end."""
    server = backend_stage.bind(0)
    server.backend = backend_stage.load_backend(model_path, score_threshold=THRESHOLD, document_root=voc.parent,
                                                batch_size=BATCH)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", voc.parent
    server.shutdown()
    server.server_close()
    thread.join(timeout=30)


def task(number, image, root):
    """A task as Label Studio sends it to /predict (TaskSimpleSerializer's fields that matter)."""
    return {"id": number, "project": 7, "data": {"image": local_files_url(image, root), "video": "clip"},
            "meta": {}, "created_at": "2026-12-06T10:00:00.000000Z", "is_labeled": False, "overlap": 1}


def test_health_and_setup_answer_the_models_version(served, model_path):
    url, _ = served
    version = model_version(model_path)
    assert http(f"{url}/health") == (200, {"status": "UP", "model_version": version})
    assert http(f"{url}/") == (200, {"status": "UP", "model_version": version})
    setup = {"project": "7.1796530000", "schema": "<View/>", "hostname": "http://localhost:8080",
             "access_token": "not logged", "extra_params": None}
    assert http(f"{url}/setup", setup) == (200, {"model_version": version})


def test_predict_gives_each_task_the_models_boxes_in_order(served, voc, model, model_path, caplog):
    from detflow.lib.inference.detector import detect_images
    from helpers.models import detector

    url, root = served
    images = sorted((voc / "JPEGImages").glob("val_*.jpg"))
    tasks = [task(index, image, root) for index, image in enumerate(images, 1)]
    missing = task(90, voc / "JPEGImages" / "gone.jpg", root)
    uploaded = {**task(91, images[0], root), "data": {"image": "/data/upload/7/1a2b3c4d-val_000.jpg"}}
    with caplog.at_level("INFO", logger="detflow.label_studio_backend"):
        status, answer = http(f"{url}/predict", {"tasks": [tasks[0], missing, *tasks[1:], uploaded],
                                                 "project": "7.1796530000", "label_config": "<View/>",
                                                 "params": {"login": None, "password": None, "context": None}})
    assert status == 200 and list(answer) == ["results"]
    results = answer["results"]
    assert len(results) == len(tasks) + 2
    version = model_version(model_path)
    assert results[1] == {"result": [], "model_version": version} == results[-1]
    found = [results[0], *results[2:-1]]
    reference = [inside(detections, image.shape[1], image.shape[0]) for _, image, detections in
                 detect_images(detector(model, THRESHOLD), [(path.stem, path) for path in images], 1)]
    assert sum(map(len, reference)) > 0, "the small model finds boxes on these images"
    differences = compare(reference, [in_pixels(item) for item in found], THRESHOLD)
    assert differences.within_tolerance, str(differences)
    assert differences.matched == sum(map(len, reference))
    for item in found:
        assert item["model_version"] == version
        if item["result"]:
            scores = [box["score"] for box in item["result"]]
            assert item["score"] == pytest.approx(sum(scores) / len(scores), abs=1e-4) and min(scores) >= THRESHOLD
            assert {(box["type"], box["from_name"], box["to_name"]) for box in item["result"]} == \
                {("rectanglelabels", "label", "image")}
    lines = [record.getMessage() for record in caplog.records]
    assert any(line.startswith(f"predict: {len(tasks) + 2} tasks of project 7: ") for line in lines), lines
    assert f"task 90: no image at {voc / 'JPEGImages' / 'gone.jpg'}: empty prediction" in lines
    assert any(line.startswith("task 91: its image /data/upload/7/") for line in lines)


def test_requests_it_cannot_answer_are_refused_and_it_serves_on(served):
    url, _ = served
    assert http(f"{url}/predict", raw=b"{not json")[0] == 400
    assert http(f"{url}/predict", {"tasks": "all"}) == (400, {"error": "the request has no list of tasks ('tasks')"})
    assert http(f"{url}/predict", {"tasks": []}) == (200, {"results": []})
    assert http(f"{url}/webhook", {"action": "ANNOTATION_CREATED", "project": {"id": 7}}) == \
        (200, {"status": "Unknown event"})
    assert http(f"{url}/train", {"annotations": []})[0] == 501
    assert http(f"{url}/versions")[0] == 404
    assert http(f"{url}/health")[0] == 200


# ---------------------------------------------------------------- refusals at start


def write_config(folder, **changes):
    """The project's config.yaml with some top-level values changed, in ``folder``."""
    config = {**yaml.safe_load((REPO / "config.yaml").read_text()), **changes}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_backend(*options, cwd=REPO):
    command = [sys.executable, "-m", "detflow.label_studio_backend", *map(str, options)]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=300)


def one_error_line(done):
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def test_without_a_model_it_says_where_it_looked(tmp_path):
    config = write_config(tmp_path)  # labelling.draft_model: results/model/inference.h5, not there
    line = one_error_line(run_backend("--config", config, "--port", 0, cwd=tmp_path))
    assert line == ("error: labelling.draft_model: no model yet at results/model/inference.h5: `snakemake --cores "
                    "all` trains one, or set labelling.draft_model")
    line = one_error_line(run_backend("--model", tmp_path / "mine.h5", "--port", 0))
    assert line.startswith(f"error: --model: no model yet at {tmp_path / 'mine.h5'}: ")


def test_a_model_for_other_classes_is_refused_naming_both(tmp_path, model_path):
    config = write_config(tmp_path, classes=["drop", "grab"])
    line = one_error_line(run_backend("--config", config, "--model", model_path, "--port", 0))
    assert line == (f"error: {model_path}: was trained on the classes grab, drop (in label order), but config's "
                    "`classes` has drop, grab: its detections would get the wrong names")


def test_a_port_in_use_is_refused_before_the_model_loads(model_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_error_line(run_backend("--model", model_path, "--port", port))
    assert line.startswith(f"error: --port: 127.0.0.1:{port} is in use (by another program?); stop it or choose "
                           "another port")


# ---------------------------------------------------------------- backend.sh


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def exported(stdout):
    return dict(line[len("export "):].split("=", 1) for line in stdout.splitlines() if line.startswith("export "))


def running(pid):
    """Whether process ``pid`` runs (one that exited and waits to be reaped does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def script(*arguments, state, root):
    env = {**os.environ, "DETFLOW_LABEL_STUDIO_DIR": str(state), "DETFLOW_LABEL_STUDIO_ROOT": str(root),
           "DETFLOW_PYTHON": sys.executable}
    return subprocess.run([str(BACKEND_SH), *map(str, arguments)], capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.mark.slow
def test_backend_sh_starts_it_on_loopback_and_stops_it_by_its_pid(tmp_path, voc, model_path):
    state, port = tmp_path / "state", free_port()
    started = script("start", port, "--model", model_path, state=state, root=voc.parent)
    try:
        assert started.returncode == 0, started.stderr[-3000:]
        values = exported(started.stdout)
        pid = int(values["LABEL_STUDIO_ML_BACKEND_PID"])
        assert values["LABEL_STUDIO_ML_BACKEND_URL"] == f"http://127.0.0.1:{port}"
        assert (state / "backend.pid").read_text().strip() == str(pid)
        assert listening(pid) == {f"127.0.0.1:{port}"}
        assert http(f"http://127.0.0.1:{port}/health")[1]["model_version"] == model_version(model_path)
        again = script("start", port, "--model", model_path, state=state, root=voc.parent)
        assert again.returncode == 0 and again.stdout == started.stdout  # the running one, reported
        busy = script("start", port, "--model", model_path, state=tmp_path / "other", root=voc.parent)
        assert busy.returncode == 1 and busy.stdout == ""
        assert busy.stderr.strip().splitlines()[-1] == (
            f"label-studio: the ML backend did not start: --port: 127.0.0.1:{port} is in use (by another program?); "
            "stop it or choose another port (Address already in use)")
    finally:
        stopped = script("stop", state=state, root=voc.parent)
    assert stopped.returncode == 0 and f"ML backend stopped (PID {pid})" in stopped.stderr, stopped.stderr
    assert not running(pid) and not (state / "backend.pid").exists()
    assert "no ML backend running" in script("stop", state=state, root=voc.parent).stderr
    assert "stopped" in (state / "backend.log").read_text().splitlines()[-1]

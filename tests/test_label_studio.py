"""Label Studio round trip: the frames to label go to a real Label Studio
1.23.2 as tasks (with a tiny real model's boxes as scored predictions), a box
submitted through its API as a person would comes back through its JSON
export as a Pascal VOC file, and the dataset stage puts it where it was drawn.

The slow tests install Label Studio with scripts/label_studio/setup.sh (its
own environment, once: minutes; skipped only when PyPI cannot be reached) and
start it with scripts/label_studio/start.sh, stopping it by its PID at the end.

The ML backend (detflow.label_studio_backend, started by
scripts/label_studio/backend.sh with the tiny model and stopped by its PID) is
connected to a project whose tasks were pushed without predictions: a task
retrieved as the labelling page retrieves it then holds the backend's boxes,
which equal detflow.predict's for that frame (detflow.lib.metrics.detection_match);
and in headless Chromium (Debian's, installed with apt-get as root, driven by
Playwright installed in Label Studio's environment) the labelling page of
another such task lists those boxes in its Regions panel, with a screenshot in
test-artifacts/.

"No internet" is a network namespace (``unshare -n``, as root) whose only
interface is loopback: no route and no name resolution beyond this machine,
checked from inside by failing to connect to pypi.org. The first start of a
fresh server (database creation included) happens there; without root or
unshare that test skips and says so. The fast tests check the conversions
and every refusal of a bad export without a server.
"""
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import urllib.request
import uuid
import zipfile
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from lxml import etree

from detflow import label_studio
from detflow.dataset import build_dataset
from detflow.lib.cli import InputError
from detflow.lib.data.pascal_voc import read_annotation
from detflow.lib.labelling import label_studio as ls_format
from detflow.lib.metrics.detection_match import compare
from helpers.config import BATCH, CONFIG, DATASET
from helpers.label_studio import in_pixels, inside
from helpers.media import file_hashes
from helpers.system import apt_install, listening
from helpers.workflow import REPO

SCRIPTS = REPO / "scripts" / "label_studio"
VENV = Path(os.environ.get("DETFLOW_LABEL_STUDIO_VENV", REPO / ".venv-label-studio"))
VOC_FIXTURES = REPO / "tests" / "data" / "label_studio_voc"
CLASSES = ["grab", "drop"]
VIDEO = "clip"
FRAMES = [f"{VIDEO}_{index:06d}.jpg" for index in range(0, 12, 2)]
# The box a person draws (percent of the image, as Label Studio stores it) and the one drawn before it.
DRAWN = {"x": 13.37, "y": 21.5, "width": 40.2, "height": 33.3}
FIRST_TRY = {"x": 1.0, "y": 1.0, "width": 10.0, "height": 10.0}
THRESHOLD = CONFIG["prelabel"]["score_threshold"]  # the drafts', and so the ML backend's, lowest score
PLAYWRIGHT = "playwright==1.65.3"
CHROMIUM = Path("/usr/bin/chromium")
PAGE_CHECK = REPO / "tests" / "helpers" / "label_studio_page.py"
ARTIFACTS = REPO / "test-artifacts"


# ---------------------------------------------------------------- fast: conversions and refusals


def write_frames(folder, names=FRAMES, size=(240, 320)):
    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        image = np.random.default_rng(index).integers(0, 256, (*size, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / name), image)
    return folder


def result(value, label="grab", size=(320, 240), **extra):
    return {"id": uuid.uuid4().hex[:10], "type": "rectanglelabels", "from_name": "label", "to_name": "image",
            "original_width": size[0], "original_height": size[1], "image_rotation": 0,
            "value": {**value, "rotation": 0, "rectanglelabels": [label]}, **extra}


def annotation(results, number=1, updated="2026-12-01T10:00:00.000000Z", cancelled=False):
    return {"id": number, "result": results, "was_cancelled": cancelled, "ground_truth": False,
            "created_at": "2026-12-01T09:00:00.000000Z", "updated_at": updated}


def task(number, image, annotations):
    return {"id": number, "data": {"image": image, "video": VIDEO}, "annotations": annotations, "predictions": []}


def local(name):
    return f"/data/local-files/?d=results/labelling/images/{name}"


def export_file(tmp_path, tasks, name="export.json"):
    path = tmp_path / name
    path.write_text(json.dumps(tasks) if not isinstance(tasks, str) else tasks)
    return path


def test_labelling_configuration_has_our_classes_in_order():
    root = etree.fromstring(ls_format.labelling_config(["grab", "drop", 'o"k']).encode())
    assert root.tag == "View"
    image, labels = root
    assert (image.tag, image.get("name"), image.get("value")) == ("Image", "image", "$image")
    assert (labels.tag, labels.get("name"), labels.get("toName")) == ("RectangleLabels", "label", "image")
    assert [label.get("value") for label in labels] == ["grab", "drop", 'o"k']


def test_tasks_are_the_chosen_frames_not_labelled_yet_served_in_place(tmp_path):
    images = write_frames(tmp_path / "results/labelling/images", FRAMES[:3] + ["my frame é.jpg"])
    selection = tmp_path / "results/labelling/selected" / f"{VIDEO}.csv"
    selection.parent.mkdir(parents=True)
    selection.write_text("frame_index,timestamp_s,file\n0,0.000,clip_000000.jpg\n2,0.200,clip_000002.jpg\n"
                         "4,0.400,clip_000004.jpg\n6,0.600,my frame é.jpg\n")
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "clip_000002.XML").write_text("<annotation/>")
    frames = label_studio.frames_to_label([selection], images, labels)
    assert [frame.path.name for frame in frames] == ["clip_000000.jpg", "clip_000004.jpg", "my frame é.jpg"]
    tasks = label_studio.make_tasks(frames, tmp_path)
    assert tasks[0] == {"data": {"image": local("clip_000000.jpg"), "video": VIDEO}}
    assert tasks[2]["data"]["image"] == local("my%20frame%20%C3%A9.jpg")
    assert ls_format.image_name(tasks[2]["data"]["image"]) == "my frame é.jpg"
    with pytest.raises(InputError, match="is not inside the document root"):
        label_studio.make_tasks(frames, tmp_path / "results/labelling/selected")
    (images / "clip_000004.jpg").unlink()
    with pytest.raises(InputError, match="missing from the labelling folder"):
        label_studio.frames_to_label([selection], images, labels)


def test_a_detection_becomes_a_scored_box_in_percent():
    detection = SimpleNamespace(box=(-3.0, 24.0, 160.0, 250.0), name="drop", score=0.87654)
    item = ls_format.box_result(detection, 320, 240, 1)
    assert item["value"] == {"x": 0.0, "y": 10.0, "width": 50.0, "height": 90.0, "rotation": 0,
                             "rectanglelabels": ["drop"]}
    assert (item["original_width"], item["original_height"], item["score"]) == (320, 240, 0.8765)
    assert ls_format.box_result(SimpleNamespace(box=(330, 1, 340, 9), name="drop", score=1), 320, 240, 1) is None


def test_import_writes_voc_files_latest_annotation_wins_negatives_kept_nothing_replaced(tmp_path):
    images = write_frames(tmp_path / "images", FRAMES[:5])
    out = tmp_path / "labels"
    out.mkdir()
    (out / "clip_000008.xml").write_text("<annotation>the person's own file</annotation>")
    before = file_hashes(out)
    tasks = [
        task(1, local(FRAMES[0]), [annotation([result(DRAWN)], 7, "2026-12-01T12:00:00Z"),
                                   annotation([result(FIRST_TRY, "drop")], 9, "2026-12-01T11:00:00Z"),
                                   annotation([result(FIRST_TRY)], 10, "2026-12-01T13:00:00Z", cancelled=True)]),
        task(2, local(FRAMES[1]), [annotation([])]),
        task(3, local(FRAMES[2]), [annotation([], cancelled=True)]),
        task(4, local(FRAMES[3]), []),
        task(5, local(FRAMES[4]), [annotation([result(DRAWN)])]),
    ]
    outcome = label_studio.import_export(export_file(tmp_path, tasks), images, out, CLASSES)
    assert outcome.written == [f"{out / 'clip_000000.xml'} (1 box)", f"{out / 'clip_000002.xml'} (no box: a negative)"]
    assert outcome.left == [f"task 3 ({FRAMES[2]}): skipped (cancelled) in Label Studio",
                            f"task 4 ({FRAMES[3]}): not annotated yet",
                            f"task 5 ({FRAMES[4]}): {out / 'clip_000008.xml'} exists already and is never replaced"]
    assert {name: digest for name, digest in file_hashes(out).items() if name in before} == before
    drawn = read_annotation(out / "clip_000000.xml")
    assert drawn.problems == [] and (drawn.filename, drawn.width, drawn.height, drawn.depth) == (FRAMES[0], 320, 240, 3)
    # 0-based pixel positions 42.78, 51.6, 171.42, 131.52, plus 1 and rounded: VOC's 1-based pixels
    assert [(item.name, item.box) for item in drawn.objects] == [("grab", (44, 53, 172, 133))]
    assert etree.parse(str(out / "clip_000000.xml")).findtext("path") == str((images / FRAMES[0]).resolve())
    assert read_annotation(out / "clip_000002.xml").objects == []


def test_upload_prefix_is_stripped_only_when_the_name_is_not_a_frame(tmp_path):
    images = write_frames(tmp_path / "images", ["clip_000000.jpg", "0badcafe-clip_000002.jpg"])
    tasks = [task(1, "/data/upload/3/1a2b3c4d-clip_000000.jpg", [annotation([])]),
             task(2, "/data/upload/3/0badcafe-clip_000002.jpg", [annotation([])])]
    outcome = label_studio.import_export(export_file(tmp_path, tasks), images, tmp_path / "out", CLASSES)
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["0badcafe-clip_000002.xml", "clip_000000.xml"]
    assert len(outcome.written) == 2


@pytest.mark.parametrize("content, reason", [
    ("{not json", "is not JSON"),
    ('{"tasks": []}', "is not a Label Studio JSON export (expected a list of tasks)"),
    ('[{"image": "/data/local-files/?d=a.jpg", "label": []}]', "looks like the JSON-MIN format"),
    ([task(1, local("elsewhere.jpg"), [annotation([])])],
     "task 1: its image elsewhere.jpg is not a frame of the labelling folder"),
    ([task(1, local(FRAMES[0]), [annotation([result(DRAWN, "fist")])])],
     "task 1 (clip_000000.jpg): result 1 of annotation 1: class 'fist' is not one of grab, drop"),
    ([task(1, local(FRAMES[0]), [annotation([result({**DRAWN, "x": 70.0}), result(DRAWN)])])],
     "task 1 (clip_000000.jpg): result 1 of annotation 1: box (224.0, 51.6)-(352.6, 131.5) px reaches "
     "outside the 320x240 image"),
    ([task(1, local(FRAMES[0]), [annotation([result(DRAWN, size=(640, 480))])])],
     "Label Studio saw the image as 640x480, but it is 320x240"),
    ([task(1, local(FRAMES[0]), [annotation([{**result(DRAWN), "value": {**DRAWN, "rotation": 30,
                                                                        "rectanglelabels": ["grab"]}}])])],
     "box is rotated by 30 degrees"),
    ([task(1, local(FRAMES[0]), [annotation([result(DRAWN)])]), task(2, local(FRAMES[0]), [annotation([])])],
     "task 2 (clip_000000.jpg): frame is annotated in task 1 too"),
])
def test_a_bad_export_is_refused_naming_the_task_and_nothing_is_written(tmp_path, content, reason):
    images = write_frames(tmp_path / "images", FRAMES[:1])
    with pytest.raises(InputError, match=re.escape(reason)):
        label_studio.import_export(export_file(tmp_path, content if isinstance(content, str) else content), images,
                                   tmp_path / "out", CLASSES)
    assert not (tmp_path / "out").exists()


def test_every_problem_is_one_line_then_exit_1_without_a_traceback(tmp_path):
    images = write_frames(tmp_path / "images", FRAMES[:2])
    export = export_file(tmp_path, [task(1, local(FRAMES[0]), [annotation([result(DRAWN, "fist")])]),
                                    task(2, local(FRAMES[1]), [annotation([result(DRAWN)])]),
                                    task(3, local("gone.jpg"), [])])
    command = [sys.executable, "-m", "detflow.label_studio", "import", str(export), "--images", str(images),
               "--out", str(tmp_path / "out"), "--classes", "grab,drop"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{export}: task 1 (clip_000000.jpg): result 1 of annotation 1: class 'fist' is not one of grab, drop" \
        in done.stderr
    assert f"{export}: task 3: its image gone.jpg is not a frame of the labelling folder {images}" in done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"error: {export}: 2 problems, each on a line above; nothing was written"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content, reason", [
    (None, "cannot be read: No such file or directory"),
    ("[{", "is not JSON"),
    ('[{"data": {"img": "x.jpg"}}]', "is not a tasks file of `detflow label-studio tasks`"),
])
def test_push_refuses_a_file_that_is_not_our_tasks_before_calling_the_server(tmp_path, content, reason):
    tasks = tmp_path / "tasks.json"
    if content is not None:
        tasks.write_text(content)
    client = label_studio.LabelStudio("http://127.0.0.1:9", "token")  # nothing listens there
    with pytest.raises(InputError, match=re.escape(reason)):
        label_studio.push(client, tasks, tmp_path / "config.xml", tmp_path, "title")
    with pytest.raises(InputError, match="give Label Studio's URL and API token"):
        label_studio.LabelStudio("", "token")


def test_label_studio_targets_never_wait_for_training(workflow_copy, model_path):
    """The tasks need no model; their drafts come from the model that exists, so asking for them never
    plans training (without a model yet, planning stops, saying how to get one: tests/test_drafts.py)."""
    jobs = workflow_copy.dry_run_jobs("label_studio")
    assert jobs["label_studio_tasks"] == 1 and "train" not in jobs and "label_studio_drafts" not in jobs
    workflow_copy.set_config(labelling={"draft_model": str(model_path)})
    drafts = workflow_copy.dry_run_jobs("label_studio_drafts")
    assert drafts["label_studio_drafts"] == 1 and not {"train", "convert", "dataset"} & set(drafts)


# ---------------------------------------------------------------- slow: a real server


def _pypi_reachable():
    done = subprocess.run([sys.executable, "-m", "pip", "index", "versions", "label-studio"], capture_output=True,
                          text=True, timeout=120)
    return done.returncode == 0


@pytest.fixture(scope="module")
def installed():
    """Label Studio's environment, made by setup.sh (which does nothing when it is there already)."""
    if not any(VENV.glob(".installed-*")) and not _pypi_reachable():
        pytest.skip("PyPI is unreachable: scripts/label_studio/setup.sh cannot install label-studio==1.23.2")
    done = subprocess.run([str(SCRIPTS / "setup.sh")], capture_output=True, text=True, timeout=3600,
                          env={**os.environ, "DETFLOW_LABEL_STUDIO_VENV": str(VENV)})
    assert done.returncode == 0, done.stderr[-4000:]
    return VENV


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project folder with chosen frames (one labelled already) and a tiny real model."""
    from helpers.models import make_inference_model
    from helpers.voc import make_voc

    root = tmp_path_factory.mktemp("label_studio") / "project"
    voc = make_voc(root.parent / "voc", train=4, val=len(FRAMES))
    frames, images = root / "results/frames" / VIDEO, root / "results/labelling/images"
    for folder in (frames, images):
        folder.mkdir(parents=True)
        for index, name in enumerate(FRAMES):
            shutil.copyfile(voc / "JPEGImages" / f"val_{index:03d}.jpg", folder / name)
    selection = root / "results/labelling/selected" / f"{VIDEO}.csv"
    selection.parent.mkdir(parents=True)
    selection.write_text("frame_index,timestamp_s,file\n" + "".join(
        f"{int(name[-10:-4])},{int(name[-10:-4]) / 10:.3f},{name}\n" for name in FRAMES))
    labels = root / "labels"
    labels.mkdir()
    shutil.copyfile(voc / "Annotations" / "val_005.xml", labels / f"{FRAMES[5][:-4]}.xml")  # labelled already
    (root / "results/model").mkdir(parents=True)
    model = make_inference_model(root / "results/model/inference.h5", sorted((voc / "JPEGImages").glob("train_*.jpg")))
    return SimpleNamespace(root=root, frames=frames, images=images, selection=selection, labels=labels, model=model,
                           classes_json=voc / "classes.json", state=root / ".label-studio", voc=voc)


def script_env(project):
    """The scripts' environment, as from a terminal 80 columns wide: COLUMNS narrows what `ps` prints, and the
    server's command line (its state folder in the test's temporary path) is longer."""
    return {**os.environ, "DETFLOW_LABEL_STUDIO_VENV": str(VENV), "DETFLOW_LABEL_STUDIO_DIR": str(project.state),
            "DETFLOW_LABEL_STUDIO_ROOT": str(project.root), "COLUMNS": "80"}


def exported(stdout):
    """{name: value} of start.sh's `export NAME=value` lines."""
    return dict(line[len("export "):].split("=", 1) for line in stdout.splitlines() if line.startswith("export "))


OFFLINE = r"""
set -euo pipefail
ip link set lo up
trap '"$scripts/stop.sh"' EXIT
eval "$("$scripts/start.sh")"
"$python" - <<'PY'
import json, os, socket, urllib.request
found = {"pid": int(os.environ["LABEL_STUDIO_PID"])}
try:
    socket.create_connection(("pypi.org", 443), timeout=5).close()
    found["internet"] = "pypi.org:443 reached"
except OSError as error:
    found["internet"] = None
    found["why_not"] = str(error)
request = urllib.request.Request(os.environ["LABEL_STUDIO_URL"] + "/api/version",
                                 headers={"Authorization": "Token " + os.environ["LABEL_STUDIO_API_KEY"]})
with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=30) as response:
    found["version"] = json.load(response)
print(json.dumps(found))
PY
"""


@pytest.fixture(scope="module")
def offline_start(installed, project):
    """A fresh server's first start (database creation included) in a network namespace with loopback
    only, probed from inside and stopped: what it answered, or None where no namespace can be made."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        return None
    if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
        return None
    env = {**script_env(project), "scripts": str(SCRIPTS), "python": sys.executable}
    home = user_folders()
    done = subprocess.run(["unshare", "-n", "bash", "-c", OFFLINE], capture_output=True, text=True, timeout=900,
                          env=env)
    assert done.returncode == 0, f"{done.stderr[-4000:]}\n{done.stdout[-2000:]}"
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "stderr": done.stderr, "home": (home, user_folders())}


def user_folders():
    """What Label Studio would keep in the user's own folders, by default."""
    folders = [Path.home() / part / "label-studio" for part in (".config", ".local/share", ".cache")]
    return {str(folder): sorted(os.listdir(folder)) if folder.is_dir() else None for folder in folders}


@pytest.fixture(scope="module")
def server(installed, project, offline_start):
    """The server, started by start.sh (after the offline start, on the same state), stopped by PID at the end."""
    done = subprocess.run([str(SCRIPTS / "start.sh")], capture_output=True, text=True, timeout=900,
                          env=script_env(project))
    assert done.returncode == 0, done.stderr[-4000:]
    values = exported(done.stdout)
    pid = int(values["LABEL_STUDIO_PID"])
    yield SimpleNamespace(url=values["LABEL_STUDIO_URL"], token=values["LABEL_STUDIO_API_KEY"], pid=pid,
                          client=label_studio.LabelStudio(values["LABEL_STUDIO_URL"], values["LABEL_STUDIO_API_KEY"]),
                          start_output=done)
    stopped = subprocess.run([str(SCRIPTS / "stop.sh")], capture_output=True, text=True, timeout=120,
                             env=script_env(project))
    assert stopped.returncode == 0 and f"stopped (PID {pid})" in stopped.stderr, stopped.stderr
    assert not Path(f"/proc/{pid}").exists()


def upload(server, project_id, path):
    """Upload an image file into a project as Label Studio's import page does (multipart)."""
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{server.url}/api/projects/{project_id}/import", data=body, method="POST",
                                     headers={"Authorization": f"Token {server.token}",
                                              "Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=120) as response:
        return json.load(response)


def frame_size(path):
    height, width = cv2.imread(str(path)).shape[:2]
    return width, height


@pytest.fixture(scope="module")
def labelled(server, project, tmp_path_factory):
    """Tasks with drafts made and pushed; a person's work submitted through the API; the JSON export pulled."""
    out = tmp_path_factory.mktemp("label_studio_files")
    label_studio.main(["tasks", "--selections", str(project.selection), "--images-dir", str(project.images),
                       "--annotations-dir", str(project.labels), "--document-root", str(project.root),
                       "--classes", ",".join(CLASSES), "--config-out", str(out / "config.xml"),
                       "--tasks-out", str(out / "tasks.json"), "--model", str(project.model),
                       "--model-classes", str(project.classes_json), "--backbone", "mobilenet128_0.25",
                       "--feature-size", "16", "--image-min-side", "96", "--image-max-side", "128",
                       "--score-threshold", "0.5", "--batch-size", "4"])
    tasks = json.loads((out / "tasks.json").read_text())
    first = label_studio.push(server.client, out / "tasks.json", out / "config.xml", project.images, "round trip")
    again = label_studio.push(server.client, out / "tasks.json", out / "config.xml", project.images, "round trip")
    project_id = first[0]
    on_server = {ls_format.image_name(item["data"]["image"]): item["id"]
                 for item in server.client.pages(f"/api/tasks/?project={project_id}", "tasks")}
    drawn, negative, skipped = FRAMES[1], FRAMES[2], FRAMES[3]
    width, height = frame_size(project.images / drawn)

    def submit(frame, value=None, label="grab", cancelled=False):
        results = [] if value is None else [result(value, label, (width, height))]
        return server.client.call("POST", f"/api/tasks/{on_server[frame]}/annotations/",
                                  {"result": results, "was_cancelled": cancelled, "lead_time": 4.2})

    submit(drawn, FIRST_TRY, "drop")  # corrected by the next submission: the latest wins
    submit(drawn, DRAWN)
    submit(negative)  # submitted with no box: nothing here
    submit(skipped, cancelled=True)
    label_studio.pull(server.client, project_id, out / "export.json")
    return SimpleNamespace(out=out, tasks=tasks, pushed=(first, again), project_id=project_id, on_server=on_server,
                           drawn=drawn, negative=negative, skipped=skipped, size=(width, height))


@pytest.mark.slow
def test_starts_without_internet(offline_start, project):
    if offline_start is None:
        pytest.skip("needs root and `unshare -n` for a network namespace without internet")
    assert offline_start["internet"] is None, "the namespace was meant to have no internet"
    assert offline_start["version"]["release"] == "1.23.2"
    assert offline_start["version"]["label-studio-os-package"]["latest_version_from_pypi"] is None
    log = (project.state / "label-studio.log").read_text()
    assert "Can't get latest version" not in log  # the check is off, not merely failing
    assert f"stopped (PID {offline_start['pid']})" in offline_start["stderr"]
    before, after = offline_start["home"]
    assert after == before  # nothing written under ~/.config, ~/.local/share or ~/.cache
    assert (project.state / "xdg" / "config" / "label-studio").is_dir()  # but in the state folder instead


@pytest.mark.slow
def test_server_listens_on_loopback_only_and_start_is_idempotent(server, project):
    port = int(server.url.rsplit(":", 1)[1])
    assert server.url.startswith("http://127.0.0.1:")
    assert listening(server.pid) == {f"127.0.0.1:{port}"}
    again = subprocess.run([str(SCRIPTS / "start.sh")], capture_output=True, text=True, timeout=120,
                           env=script_env(project))
    assert again.returncode == 0 and again.stdout == server.start_output.stdout
    assert "warning" not in server.start_output.stderr  # e.g. a token the server refuses
    credentials = project.state / "credentials.env"
    assert oct(credentials.stat().st_mode & 0o777) == "0o600"


@pytest.mark.slow
def test_tasks_and_scored_predictions_show_up_on_the_server(labelled, server, project):
    (first, again), tasks = labelled.pushed, labelled.tasks
    assert first[1:] == (len(FRAMES) - 1, 0) and again == (first[0], 0, len(FRAMES) - 1)  # a rerun adds nothing
    assert sorted(labelled.on_server) == sorted(FRAMES[:5])  # FRAMES[5] is labelled already
    details = server.client.call("GET", f"/api/projects/{labelled.project_id}/")
    assert details["label_config"].strip() == (labelled.out / "config.xml").read_text().strip()
    served = server.client.call("GET", local(FRAMES[0]), raw=True)
    assert served == (project.images / FRAMES[0]).read_bytes()
    ours = {ls_format.image_name(item["data"]["image"]): item["predictions"][0]
            for item in tasks if item.get("predictions")}
    assert ours, "the tiny model finds boxes on these frames"
    theirs = server.client.call("GET", f"/api/predictions/?project={labelled.project_id}")
    by_task = {item["task"]: item for item in theirs}
    assert len(theirs) == len(ours)
    for frame, prediction in ours.items():
        found = by_task[labelled.on_server[frame]]
        assert found["model_version"] == prediction["model_version"]
        assert found["model_version"].startswith("inference.h5 ")
        assert found["score"] == pytest.approx(prediction["score"])
        assert [item["score"] for item in found["result"]] == [item["score"] for item in prediction["result"]]
        assert [item["value"] for item in found["result"]] == [item["value"] for item in prediction["result"]]
        assert all(0.5 <= item["score"] <= 1 and item["type"] == "rectanglelabels" for item in found["result"])


@pytest.mark.slow
def test_a_box_drawn_in_label_studio_reaches_the_dataset_in_image_pixels(labelled, project, tmp_path):
    annotations = tmp_path / "annotations"
    outcome = label_studio.import_export(labelled.out / "export.json", project.images, annotations, CLASSES)
    assert outcome.written == [f"{annotations / labelled.drawn.replace('.jpg', '.xml')} (1 box)",
                               f"{annotations / labelled.negative.replace('.jpg', '.xml')} (no box: a negative)"]
    skipped_task = labelled.on_server[labelled.skipped]
    assert outcome.left == [f"task {skipped_task} ({labelled.skipped}): skipped (cancelled) in Label Studio"]
    summary = build_dataset(annotations, [project.frames], tmp_path / "voc", classes=CLASSES, on_error="stop",
                            classes_from=DATASET["classes_from"], boxes_outside=DATASET["boxes_outside"])
    assert (summary["used"], summary["negatives"], summary["boxes"]) == (2, 1, {"grab": 1, "drop": 0})
    written = read_annotation(tmp_path / "voc" / "Annotations" / labelled.drawn.replace(".jpg", ".xml"))
    width, height = labelled.size
    assert (written.width, written.height) == (width, height)
    [box] = written.objects
    drawn = (DRAWN["x"] * width / 100, DRAWN["y"] * height / 100, (DRAWN["x"] + DRAWN["width"]) * width / 100,
             (DRAWN["y"] + DRAWN["height"]) * height / 100)
    assert box.name == "grab"
    # keras-retinanet reads VOC's 1-based pixels minus 1: the box as drawn, in 0-based image pixels
    assert np.abs(np.array(box.box) - 1 - np.array(drawn)).max() <= 0.5


@pytest.mark.slow
def test_label_studios_own_voc_export_is_kept_as_a_fixture(labelled, server, tmp_path):
    """Label Studio's "VOC" export of the same project, kept in tests/data/label_studio_voc/ for the
    dataset stage's tests: a served file comes out as ``<8 hex digits of md5(its URL)>__<frame>.xml``,
    with 0-based truncated pixels, no file for the negative, and, of a task's two annotations, the
    older one (its converter writes every annotation to the same file, newest first)."""
    archive = zipfile.ZipFile(io.BytesIO(server.client.call(
        "GET", f"/api/projects/{labelled.project_id}/export?exportType=VOC", raw=True)))
    xml = {Path(name).name: archive.read(name) for name in archive.namelist()
           if name.startswith("Annotations/") and name.endswith(".xml")}
    assert len(xml) == 1  # the negative (no box) and the skipped frame have no file
    [(name, data)] = xml.items()
    assert re.fullmatch(r"[0-9a-f]{8}__" + re.escape(labelled.drawn.replace(".jpg", ".xml")), name)
    (tmp_path / name).write_bytes(data)
    assert (VOC_FIXTURES / name).read_bytes() == data, f"the export changed: see {tmp_path / name}"
    root = etree.fromstring(data)
    width, height = labelled.size
    x, y = int(FIRST_TRY["x"] * width / 100), int(FIRST_TRY["y"] * height / 100)
    box = [int(root.findtext(f"object/bndbox/{tag}")) for tag in ("xmin", "ymin", "xmax", "ymax")]
    assert root.findtext("object/name") == "drop"
    assert box == [x, y, x + int(FIRST_TRY["width"] * width / 100), y + int(FIRST_TRY["height"] * height / 100)]


@pytest.mark.slow
def test_uploaded_images_come_back_under_their_frame_name(server, project, tmp_path):
    """The alternative to served files: an uploaded frame is renamed ``<8 random hex digits>-<frame>``;
    the import strips that to find the frame. Label Studio's VOC export of it, named the same way, is
    kept in tests/data/label_studio_voc/uploaded/."""
    config = ls_format.labelling_config(CLASSES)
    project_id = server.client.call("POST", "/api/projects/", {"title": "uploads", "label_config": config})["id"]
    upload(server, project_id, project.images / FRAMES[4])
    [uploaded] = server.client.pages(f"/api/tasks/?project={project_id}", "tasks")
    name = ls_format.image_name(uploaded["data"]["image"])
    assert re.fullmatch(r"[0-9a-f]{8}-" + re.escape(FRAMES[4]), name)
    width, height = frame_size(project.images / FRAMES[4])
    server.client.call("POST", f"/api/tasks/{uploaded['id']}/annotations/",
                       {"result": [result(DRAWN, "drop", (width, height))]})
    label_studio.pull(server.client, project_id, tmp_path / "export.json")
    outcome = label_studio.import_export(tmp_path / "export.json", project.images, tmp_path / "out", CLASSES)
    assert outcome.written == [f"{tmp_path / 'out' / FRAMES[4].replace('.jpg', '.xml')} (1 box)"]
    archive = zipfile.ZipFile(io.BytesIO(server.client.call(
        "GET", f"/api/projects/{project_id}/export?exportType=VOC", raw=True)))
    [member] = [item for item in archive.namelist() if item.startswith("Annotations/") and item.endswith(".xml")]
    prefix = name.split("-", 1)[0]  # Label Studio's upload prefix, random
    assert Path(member).name == f"{prefix}-{FRAMES[4].replace('.jpg', '.xml')}"
    [fixture] = (VOC_FIXTURES / "uploaded").glob("*.xml")
    (tmp_path / Path(member).name).write_bytes(archive.read(member))
    kept = fixture.name.split("-", 1)[0]
    assert archive.read(member).replace(prefix.encode(), kept.encode()) == fixture.read_bytes(), \
        f"the export changed: see {tmp_path / Path(member).name}"


@pytest.mark.slow
def test_push_refuses_tasks_whose_images_the_server_does_not_serve(server, project, tmp_path):
    tasks = [{"data": {"image": local("not_there.jpg")}}]
    (tmp_path / "tasks.json").write_text(json.dumps(tasks))
    (tmp_path / "config.xml").write_text(ls_format.labelling_config(CLASSES))
    with pytest.raises(InputError, match="does not serve /data/local-files/\\?d=results/labelling/images/not_there.jpg"):
        label_studio.push(server.client, tmp_path / "tasks.json", tmp_path / "config.xml", project.images, "refused")


# ---------------------------------------------------------------- slow: the ML backend, asked by the server


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def backend(server, project):
    """The ML backend with the project's model and config.yaml's threshold, started by backend.sh (serving the
    project's files, as the server does), stopped by its PID at the end."""
    env = {**script_env(project), "DETFLOW_PYTHON": sys.executable,
           "DETFLOW_LABEL_STUDIO_BACKEND_PORT": str(free_port())}
    script = str(SCRIPTS / "backend.sh")
    started = subprocess.run([script, "start", "--model", str(project.model)], capture_output=True, text=True,
                             timeout=600, env=env)
    try:
        assert started.returncode == 0, started.stderr[-4000:]
        values = exported(started.stdout)
        yield SimpleNamespace(url=values["LABEL_STUDIO_ML_BACKEND_URL"], pid=int(values["LABEL_STUDIO_ML_BACKEND_PID"]),
                              version=ls_format.model_version(project.model), log=project.state / "backend.log")
    finally:
        stopped = subprocess.run([script, "stop"], capture_output=True, text=True, timeout=120, env=env)
    assert stopped.returncode == 0 and "ML backend stopped" in stopped.stderr, stopped.stderr
    assert not (project.state / "backend.pid").exists()


@pytest.fixture(scope="module")
def connected(server, backend, project, tmp_path_factory):
    """A project of its own with the tasks pushed WITHOUT predictions, and the backend connected to it twice."""
    out = tmp_path_factory.mktemp("backend_tasks")
    label_studio.main(["tasks", "--selections", str(project.selection), "--images-dir", str(project.images),
                       "--annotations-dir", str(project.labels), "--document-root", str(project.root),
                       "--classes", ",".join(CLASSES), "--config-out", str(out / "config.xml"),
                       "--tasks-out", str(out / "tasks.json")])
    project_id = label_studio.push(server.client, out / "tasks.json", out / "config.xml", project.images,
                                   "ml backend")[0]
    before = server.client.call("GET", f"/api/predictions/?project={project_id}")
    connections = [label_studio.connect(server.client, project_id, backend.url, label_studio.BACKEND_TITLE)
                   for _ in range(2)]
    tasks = {ls_format.image_name(item["data"]["image"]): item["id"]
             for item in server.client.pages(f"/api/tasks/?project={project_id}", "tasks")}
    return SimpleNamespace(project_id=project_id, tasks=tasks, before=before, connections=connections)


@pytest.fixture(scope="module")
def predicted(project, tmp_path_factory):
    """detflow.predict's detections of each frame (the validation image it was copied from) at the drafts'
    threshold: {frame: {"width", "height", "detections", ...}}."""
    from detflow.lib.inference.detector import load_detector
    from detflow.predict import predict_split

    out = tmp_path_factory.mktemp("predict")
    detector = load_detector(project.model, score_threshold=THRESHOLD)
    content = predict_split(detector, project.voc, "val", out / "images", out / "val.csv", out / "val.json",
                            batch_size=BATCH)
    images = {item["image"]: item for item in content["images"]}
    return {frame: images[f"val_{index:03d}"] for index, frame in enumerate(FRAMES)}


def predictions(server, project_id):
    """{task id: [prediction, ...]} of a project, as Label Studio holds them."""
    found = {}
    for item in server.client.call("GET", f"/api/predictions/?project={project_id}"):
        found.setdefault(item["task"], []).append(item)
    return found


@pytest.mark.slow
def test_a_task_retrieved_gets_the_ml_backends_boxes_which_are_predicts(connected, backend, server, predicted):
    (backend_id, created), again = connected.connections
    assert created and again == (backend_id, False)  # the second connect reuses the first connection
    [connection] = server.client.call("GET", f"/api/ml?project={connected.project_id}")
    assert (connection["state"], connection["url"], connection["model_version"]) == ("CO", backend.url,
                                                                                    backend.version)
    settings = server.client.call("GET", f"/api/projects/{connected.project_id}/")
    assert settings["show_collab_predictions"] and settings["model_version"] == label_studio.BACKEND_TITLE
    assert connected.before == []  # pushed without predictions: none imported
    frame = next(frame for frame in sorted(connected.tasks) if predicted[frame]["detections"])
    task = server.client.call("GET", f"/api/tasks/{connected.tasks[frame]}/")  # as the labelling page asks
    [prediction] = task["predictions"]
    assert prediction["model_version"] == backend.version
    reference = predicted[frame]
    expected = inside(reference["detections"], reference["width"], reference["height"])
    differences = compare([expected], [in_pixels(prediction)], THRESHOLD)
    assert differences.within_tolerance and differences.matched == len(expected) > 0, str(differences)
    assert list(predictions(server, connected.project_id)) == [connected.tasks[frame]]  # asked for this task only
    assert (f"predict: 1 task of project {connected.project_id}: {len(expected)} boxes on 1, 0 without any"
            in backend.log.read_text())


@pytest.fixture(scope="module")
def browser(installed):
    """The Python of Label Studio's environment with Playwright (pip), and Debian's Chromium (apt-get)."""
    if not CHROMIUM.exists():
        reason = apt_install(["chromium"])
        if reason:
            pytest.skip(reason)
    python = installed / "bin" / "python"
    if subprocess.run([str(python), "-c", "import playwright"], capture_output=True).returncode != 0:
        done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", PLAYWRIGHT], capture_output=True,
                              text=True, timeout=1800)
        if done.returncode != 0:
            pytest.skip(f"pip cannot install {PLAYWRIGHT} into {installed}: {done.stderr.strip()[-300:]}")
    return python


@pytest.mark.slow
def test_the_labelling_page_lists_the_ml_backends_boxes(connected, backend, server, project, predicted, browser):
    asked = predictions(server, connected.project_id)
    frame = next(frame for frame, task in sorted(connected.tasks.items())
                 if task not in asked and predicted[frame]["detections"])
    task = connected.tasks[frame]
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "label_studio_ml_backend.png"
    screenshot.unlink(missing_ok=True)
    done = subprocess.run([str(browser), str(PAGE_CHECK), server.url, str(project.state / "credentials.env"),
                           str(connected.project_id), str(task), str(screenshot)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    shown = json.loads(done.stdout.strip().splitlines()[-1])["regions"]
    [prediction] = predictions(server, connected.project_id)[task]  # made when the page opened the task
    assert prediction["model_version"] == backend.version
    boxes = sorted((item["value"]["rectanglelabels"][0], item["score"]) for item in prediction["result"])
    assert len(boxes) == len(inside(predicted[frame]["detections"], predicted[frame]["width"],
                                    predicted[frame]["height"]))
    shown = sorted((name, float(score)) for name, score in shown)  # the panel shows scores to 2 decimals
    assert [name for name, _ in shown] == [name for name, _ in boxes]
    assert all(abs(score - round(expected, 2)) < 1e-9 for (_, score), (_, expected) in zip(shown, boxes)), \
        (shown, boxes)

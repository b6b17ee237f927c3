"""Label Studio round trip: the frames chosen for labelling become Label Studio
tasks (with the model's boxes as predictions, when a model exists), and Label
Studio's JSON export comes back as labelImg-style Pascal VOC files, which the
dataset stage reads like any person's labels.

To Label Studio (``tasks``):

- The labelling configuration is a ``RectangleLabels`` (``label``) over an
  ``Image`` (``image``) with the configured classes, in their order.
- One task per frame chosen for labelling (``results/labelling/selected/``)
  that has no annotation file yet in the annotations folder or export
  (matched as the dataset stage matches them), in selection order.
- The images are not uploaded: a task points at the frame in the labelling
  folder through Label Studio's local-files serving,
  ``/data/local-files/?d=<path relative to the document root>``. The server
  must run with ``LOCAL_FILES_SERVING_ENABLED=true`` and
  ``LOCAL_FILES_DOCUMENT_ROOT`` = that root (scripts/label_studio/start.sh
  does both, with the project folder as root), and the project needs a Local
  Storage entry for the labelling folder (``push`` creates it). Uploading
  would copy every frame into Label Studio's database folder and rename it
  with a hash prefix; served in place, a frame keeps its name, and the export
  names the frame each annotation belongs to.
- With a model, each task carries one prediction: ``model_version`` names the
  model file and the start of its SHA-256, every box is a ``rectanglelabels``
  result in percent of ``original_width``/``original_height`` with its
  ``score``, and the prediction's ``score`` is the mean of its boxes' scores
  (Label Studio sorts and samples tasks by it). The boxes are the detections
  scoring at least the threshold, as ``detflow.drafts`` drafts them. A frame
  with no such detection gets no prediction: an empty one, submitted
  unchanged, would say "nothing here" without anyone having looked.

To Label Studio and back (``push``, ``pull``): the REST API, with the URL and
token that scripts/label_studio/start.sh prints. ``push`` creates the project
(or finds it by title), its Local Storage entry, and imports the tasks whose
image it does not hold yet, so it can be rerun after the next labelling round.
``pull`` saves the project's JSON export. ``connect`` connects the ML backend (``detflow
label-studio-backend``) to the project (``POST /api/ml``; an existing connection with the same URL is
reused) and makes the project show its predictions (``show_collab_predictions``, and ``model_version``
naming the backend, which "Label All Tasks" follows): from then on, opening a task that holds no
prediction makes Label Studio ask the backend for the model's boxes.

From Label Studio (``import``), Label Studio's "JSON" export format (a list of
tasks with ``annotations[].result[]``):

- A task's frame is the file name of its image URL (the ``d=`` path of a
  local file); Label Studio's upload prefix (8 hexadecimal digits and ``-``)
  is stripped only when the name as it stands is not a frame of the labelling
  folder.
- Cancelled (skipped) annotations are ignored. Of the others, the one updated
  last wins (then the higher id); a task with none is left for later.
- An annotation submitted with no box is a valid negative: a file with no
  object. Each box needs exactly one class of ``classes``, no rotation, and
  must lie inside the image (0.5 px of slack for rounding); its size must be
  the real image's. Percent coordinates become VOC's 1-based pixel
  coordinates the way the pre-labelling drafts do (0-based position + 1,
  rounded), so keras-retinanet reads back the box that was drawn.
- One file per annotated task, named after the frame, ``<path>`` the frame in
  the labelling folder (labelImg opens it). A file that exists already is
  never replaced: it is listed as left, with the reason.
- Every problem of the export is reported, one line each naming the task
  and the reason, and then nothing is written at all (exit 1).
"""
import argparse
import json
import logging
import math
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from PIL import Image

from detflow.lib.cli import InputError, add_model_options, model_options, prog, run
from detflow.lib.data.annotation_sources import labelled_image_ids
from detflow.lib.data.frame_lists import read_selection
from detflow.lib.data.pascal_voc import write_annotation
from detflow.lib.data.videos import frame_id
from detflow.lib.files import creating, write_atomically
from detflow.lib.labelling.label_studio import (
    IMAGE_NAME, image_name, labelling_config, local_files_url, model_version, prediction,
)

log = logging.getLogger(__name__)

UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-(.+)$")  # what Label Studio puts before an uploaded file's name
SLACK_PX = 0.5  # how far (in pixels) a box may reach past the image edge and still be taken as touching it
EXPORT_FILE = "results/label_studio/export.json"  # under results/, which git ignores
DEFAULT_TITLE = "detflow"
BACKEND_TITLE = "detflow model"  # the ML backend's name in the project
CONNECTED = "CO"  # Label Studio's state of an ML backend that answered its /health and /setup


# ---------------------------------------------------------------- to Label Studio


@dataclass(frozen=True)
class Frame:
    """A frame chosen for labelling, in the labelling folder."""

    image_id: str
    video: str
    path: Path


def frames_to_label(selections, images_dir, annotations_dir):
    """The chosen frames (of every selection, in order) that have no annotation yet in the annotations
    folder or export (matched as the dataset stage matches them)."""
    frames = []
    for selection in map(Path, selections):
        for _, file in read_selection(selection):
            path = Path(images_dir) / file
            if not path.is_file():
                raise InputError(path, f"chosen in {selection} but missing from the labelling folder "
                                       "(rerun `snakemake labelling`)")
            frames.append(Frame(frame_id(file), selection.stem, path))
    labelled = labelled_image_ids(annotations_dir, {frame.image_id for frame in frames})
    return [frame for frame in frames if frame.image_id not in labelled]


def draft_predictions(detector, frames, classes, version, batch_size):
    """{image id: Label Studio prediction} for the frames on which the model finds boxes."""
    from detflow.lib.inference import detector as inference  # TensorFlow: only for drafts

    predictions = {}
    for image_id, image, detections in inference.detect_images(detector, [(f.image_id, f.path) for f in frames],
                                                               batch_size):
        if isinstance(image, inference.Unreadable):
            continue  # reported by detect_images; the task stays, without a draft
        unknown = sorted({detection.name for detection in detections} - set(classes))
        if unknown:
            raise InputError(image_id, f"the model predicts class {unknown[0]!r}, which is not one of the "
                                       f"labelling classes {', '.join(classes)}")
        found = prediction(detections, image.shape[1], image.shape[0], version)
        if found:
            predictions[image_id] = found
    return predictions


def make_tasks(frames, document_root, predictions=None):
    """Label Studio tasks for ``frames``: the image's URL, the frame's video, and its prediction if any."""
    tasks = []
    for frame in frames:
        task = {"data": {IMAGE_NAME: local_files_url(frame.path, document_root), "video": frame.video}}
        if predictions and frame.image_id in predictions:
            task["predictions"] = [predictions[frame.image_id]]
        tasks.append(task)
    return tasks


def _write_text(path, text):
    """Write ``path`` whole or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, text)


def write_tasks(path, tasks):
    _write_text(path, json.dumps(tasks, indent=1, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------- from Label Studio


@dataclass
class Outcome:
    """What an import did: files written, and what was left, with why."""

    written: list
    left: list


def read_export(path):
    """The tasks of a Label Studio JSON export; InputError when it is not one."""
    try:
        tasks = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(path, f"cannot be read: {error.strerror or error}")
    except (ValueError, UnicodeDecodeError) as error:
        raise InputError(path, f"is not JSON ({error})")
    if not isinstance(tasks, list) or not all(isinstance(task, dict) for task in tasks):
        raise InputError(path, "is not a Label Studio JSON export (expected a list of tasks)")
    for task in tasks:
        if not isinstance(task.get("data"), dict) or not isinstance(task.get("annotations"), list):
            hint = (" (this looks like the JSON-MIN format: export as \"JSON\")"
                    if IMAGE_NAME in task and "annotations" not in task else "")
            raise InputError(path, f"is not a Label Studio JSON export: task {task.get('id', '?')} has no "
                                   f"'data' and 'annotations'{hint}")
    return tasks


def find_frame(name, frames):
    """The frame file ``name`` stands for among ``frames`` ({file name: path}): as it is, or with
    Label Studio's upload prefix stripped; None when neither is there."""
    if name in frames:
        return frames[name]
    prefixed = UPLOAD_PREFIX.match(name)
    return frames.get(prefixed.group(1)) if prefixed else None


def _time(annotation, key):
    try:
        return datetime.fromisoformat(str(annotation.get(key, "")).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return -math.inf


def latest_annotation(task):
    """The annotation that counts: not cancelled, updated last (then the highest id); None if none."""
    kept = [item for item in task["annotations"] if isinstance(item, dict) and not item.get("was_cancelled")]
    if not kept:
        return None
    return max(kept, key=lambda item: (_time(item, "updated_at"), _time(item, "created_at"),
                                       item.get("id") if isinstance(item.get("id"), int) else -1))


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def voc_object(result, width, height, classes):
    """One ``rectanglelabels`` result as a write_annotation object (1-based VOC pixels); raises
    ValueError with the reason when it cannot be one."""
    if result.get("type") != "rectanglelabels":
        raise ValueError(f"result of type {result.get('type')!r} is not a labelled box (rectanglelabels)")
    seen = (result.get("original_width"), result.get("original_height"))
    if seen != (width, height):
        raise ValueError(f"Label Studio saw the image as {seen[0]}x{seen[1]}, but it is {width}x{height}")
    value = result.get("value") or {}
    names = value.get("rectanglelabels")
    if not isinstance(names, list) or len(names) != 1:
        raise ValueError(f"a box needs exactly one class, it has {names!r}")
    if names[0] not in classes:
        raise ValueError(f"class {names[0]!r} is not one of {', '.join(classes)}")
    if not all(_number(value.get(key)) for key in ("x", "y", "width", "height")):
        raise ValueError(f"box {value!r} lacks x, y, width or height")
    if value.get("rotation", 0) not in (0, None) and value["rotation"] % 360:
        raise ValueError(f"box is rotated by {value['rotation']} degrees; Pascal VOC boxes cannot be")
    x1, y1 = value["x"] * width / 100, value["y"] * height / 100
    x2, y2 = x1 + value["width"] * width / 100, y1 + value["height"] * height / 100
    if x1 < -SLACK_PX or y1 < -SLACK_PX or x2 > width + SLACK_PX or y2 > height + SLACK_PX:
        raise ValueError(f"box ({x1:.1f}, {y1:.1f})-({x2:.1f}, {y2:.1f}) px reaches outside the "
                         f"{width}x{height} image")
    xmin, xmax = (min(max(round(v + 1), 1), width) for v in (x1, x2))
    ymin, ymax = (min(max(round(v + 1), 1), height) for v in (y1, y2))
    if xmin >= xmax or ymin >= ymax:
        raise ValueError(f"box ({x1:.1f}, {y1:.1f})-({x2:.1f}, {y2:.1f}) px is less than a pixel wide or high")
    return {"name": names[0], "xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax}


def _image_size(path):
    try:
        with Image.open(path) as image:
            return image.width, image.height, len(image.getbands())
    except (OSError, ValueError):
        return None


def plan_import(export, images_dir, out_dir, classes):
    """What importing ``export`` would write: (files {path: (frame, size, objects)}, left, problems)."""
    tasks = read_export(export)
    frames = {path.name: path for path in Path(images_dir).iterdir() if path.is_file()}
    files, left, problems, owners = {}, [], [], {}
    for task in tasks:
        where = f"task {task.get('id', '?')}"
        url = task["data"].get(IMAGE_NAME)
        if not isinstance(url, str) or not url:
            problems.append(f"{where}: no image URL in data.{IMAGE_NAME}")
            continue
        name = image_name(url)
        frame = find_frame(name, frames)
        if frame is None:
            problems.append(f"{where}: its image {name} is not a frame of the labelling folder {images_dir}")
            continue
        where = f"task {task.get('id', '?')} ({frame.name})"
        annotation = latest_annotation(task)
        if annotation is None:
            cancelled = any(isinstance(item, dict) and item.get("was_cancelled") for item in task["annotations"])
            left.append(f"{where}: {'skipped (cancelled) in Label Studio' if cancelled else 'not annotated yet'}")
            continue
        if frame.name in owners:
            problems.append(f"{where}: frame is annotated in task {owners[frame.name]} too; delete one of the tasks "
                            "or its annotation in Label Studio")
            continue
        owners[frame.name] = task.get("id", "?")
        size = _image_size(frame)
        if size is None:
            problems.append(f"{where}: {frame} is not a readable image")
            continue
        result = annotation.get("result")
        if not isinstance(result, list):
            problems.append(f"{where}: annotation {annotation.get('id', '?')} has no result list")
            continue
        objects = []
        for index, item in enumerate(result, 1):
            try:
                objects.append(voc_object(item if isinstance(item, dict) else {}, size[0], size[1], classes))
            except ValueError as error:
                problems.append(f"{where}: result {index} of annotation {annotation.get('id', '?')}: {error}")
        target = Path(out_dir) / f"{frame_id(frame.name)}.xml"
        if target.exists():
            left.append(f"{where}: {target} exists already and is never replaced")
            continue
        files[target] = (frame, size, objects)
    return files, left, problems


def import_export(export, images_dir, out_dir, classes):
    """Write a Pascal VOC file per annotated task of ``export`` into ``out_dir``; never replace a file.
    Returns an Outcome; InputError (after logging every problem) when anything is wrong."""
    files, left, problems = plan_import(export, images_dir, out_dir, classes)
    if len(problems) == 1:
        raise InputError(export, f"{problems[0]}; nothing was written")
    if problems:
        for problem in problems:
            log.error("%s: %s", export, problem)
        raise InputError(export, f"{len(problems)} problems, each on a line above; nothing was written")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    written = []
    for target, (frame, (width, height, depth), objects) in files.items():
        try:
            with creating(target) as partial:
                write_annotation(partial, filename=frame.name, width=width, height=height, depth=depth,
                                 objects=objects, image_path=str(frame.resolve()))
        except FileExistsError:
            left.append(f"{frame.name}: {target} appeared meanwhile and is never replaced")
            continue
        boxes = f"{len(objects)} box{'es' if len(objects) > 1 else ''}" if objects else "no box: a negative"
        written.append(f"{target} ({boxes})")
    return Outcome(written, left)


# ---------------------------------------------------------------- the REST API


class LabelStudio:
    """The few calls of Label Studio's REST API that the round trip needs (token authentication)."""

    def __init__(self, url, token):
        if not url or not token:
            raise InputError("--url/--token", "give Label Studio's URL and API token (or set LABEL_STUDIO_URL and "
                                              "LABEL_STUDIO_API_KEY, as scripts/label_studio/start.sh prints them)")
        self.url, self.token = url.rstrip("/"), token
        # A server on this machine is never reached through a proxy, whatever http_proxy says.
        loopback = urllib.parse.urlsplit(self.url).hostname in ("127.0.0.1", "localhost", "::1")
        handlers = [urllib.request.ProxyHandler({})] if loopback else []
        self.opener = urllib.request.build_opener(*handlers)

    def call(self, method, path, body=None, raw=False):
        request = urllib.request.Request(
            self.url + path, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json"})
        try:
            with self.opener.open(request, timeout=600) as response:
                data = response.read()
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors="replace").strip().replace("\n", " ")
            raise InputError(self.url + path, f"Label Studio answered {error.code} {error.reason}: {text[:300]}")
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise InputError(self.url, f"no answer from Label Studio ({reason}); is it running? "
                                       "(scripts/label_studio/start.sh)")
        return data if raw else json.loads(data or b"null")

    def pages(self, path, key):
        """Every item of a paginated list."""
        items, page = [], 1
        while True:
            separator = "&" if "?" in path else "?"
            answer = self.call("GET", f"{path}{separator}page={page}&page_size=500")
            batch = answer.get(key, []) if isinstance(answer, dict) else answer
            items.extend(batch)
            total = answer.get("total", answer.get("count")) if isinstance(answer, dict) else None
            if not batch or total is None or len(items) >= total:
                return items
            page += 1

    def project(self, title):
        """The id of the project called ``title``, or None."""
        ids = [item["id"] for item in self.pages("/api/projects/", "results") if item.get("title") == title]
        if len(ids) > 1:
            raise InputError(self.url, f"{len(ids)} projects are called {title!r}: give --project")
        return ids[0] if ids else None


def _read_text(path):
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(path, f"cannot be read: {getattr(error, 'strerror', None) or error}")


def _read_tasks(path):
    """The tasks of a file made by the ``tasks`` command; InputError when it is not one."""
    try:
        tasks = json.loads(_read_text(path))
    except ValueError as error:
        raise InputError(path, f"is not JSON ({error})")
    if not isinstance(tasks, list) or not all(isinstance(task, dict) and isinstance(task.get("data"), dict)
                                              and isinstance(task["data"].get(IMAGE_NAME), str) for task in tasks):
        raise InputError(path, "is not a tasks file of `detflow label-studio tasks` (a list of tasks "
                               f"with data.{IMAGE_NAME})")
    return tasks


def push(client, tasks_file, config_file, images_dir, title):
    """Create (or find) the project, its Local Storage entry for ``images_dir``, and import the tasks
    whose image the project does not hold yet. Returns (project id, tasks imported, tasks already there)."""
    tasks, label_config = _read_tasks(tasks_file), _read_text(config_file)
    project = client.project(title)
    if project is None:
        project = client.call("POST", "/api/projects/", {"title": title, "label_config": label_config,
                                                         "description": "Frames chosen for labelling by detflow"})["id"]
        log.info("created project %d %r", project, title)
    elif client.call("GET", f"/api/projects/{project}/")["label_config"].strip() != label_config.strip():
        client.call("PATCH", f"/api/projects/{project}/", {"label_config": label_config})
        log.info("project %d: labelling configuration updated", project)
    storage_path = str(Path(images_dir).resolve())
    storages = client.call("GET", f"/api/storages/localfiles/?project={project}")
    if not any(item.get("path") == storage_path for item in storages):
        client.call("POST", "/api/storages/localfiles/", {"project": project, "path": storage_path,
                                                         "title": "labelling frames", "use_blob_urls": False})
        log.info("project %d: Local Storage for %s", project, storage_path)
    present = {task["data"].get(IMAGE_NAME) for task in client.pages(f"/api/tasks/?project={project}", "tasks")}
    new = [task for task in tasks if task["data"][IMAGE_NAME] not in present]
    if new:  # one image, as the labelling page will ask for it
        try:
            client.call("GET", new[0]["data"][IMAGE_NAME], raw=True)
        except InputError as error:
            raise InputError(client.url, f"does not serve {new[0]['data'][IMAGE_NAME]} ({error.reason}); start Label "
                                         f"Studio with LOCAL_FILES_SERVING_ENABLED=true and LOCAL_FILES_DOCUMENT_ROOT "
                                         "the tasks' document root, as scripts/label_studio/start.sh does")
    if new:
        client.call("POST", f"/api/projects/{project}/import", new)
    return project, len(new), len(tasks) - len(new)


def connect(client, project, backend_url, title):
    """Connect the ML backend at ``backend_url`` to ``project`` (an existing connection with that URL is reused)
    and make it the source of the predictions a person sees on opening a task. Returns (backend id, created)."""
    backends = client.call("GET", f"/api/ml?project={project}")
    same = [item for item in backends if str(item.get("url", "")).rstrip("/") == backend_url.rstrip("/")]
    created = not same
    if created:  # Label Studio asks the backend's /health and /setup before it accepts the URL
        backend = client.call("POST", "/api/ml", {"url": backend_url, "project": project, "title": title,
                                                  "is_interactive": False})
    else:
        backend = same[0]
    others = [f"{item['id']} ({item.get('url')})" for item in backends if item not in same]
    if others:  # Label Studio asks only the project's first ML backend
        log.warning("project %d has other ML backends too: %s; remove them in the project's settings (Model) "
                    "if this one is not asked", project, ", ".join(others))
    backend = client.call("GET", f"/api/ml/{backend['id']}")  # asks the backend again: its state now
    if backend.get("state") != CONNECTED:
        raise InputError(backend_url, f"Label Studio cannot use this ML backend (state {backend.get('readable_state')}"
                                      f"{': ' + backend['error_message'] if backend.get('error_message') else ''}); "
                                      "is it running? (scripts/label_studio/backend.sh start)")
    # Opening a task without predictions asks the backend when the project shows predictions; the project's
    # model version naming the backend's title makes "Label All Tasks" ask it too.
    client.call("PATCH", f"/api/projects/{project}/", {"show_collab_predictions": True,
                                                       "model_version": backend["title"]})
    return backend["id"], created


def pull(client, project, out):
    """Save the project's JSON export (its annotated tasks) at ``out``; return the number of tasks."""
    data = client.call("GET", f"/api/projects/{project}/export?exportType=JSON", raw=True)
    tasks = json.loads(data)
    _write_text(out, json.dumps(tasks, indent=1, ensure_ascii=False) + "\n")
    return len(tasks)


# ---------------------------------------------------------------- command line


def _classes(args):
    if args.classes:
        return args.classes.split(",")
    try:
        return [line.strip() for line in Path(args.classes_file).read_text().splitlines() if line.strip()]
    except OSError as error:
        raise InputError(args.classes_file, f"cannot be read: {error.strerror or error}")


def _add_classes(parser):
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--classes", help="comma-separated class names, in label-id order")
    group.add_argument("--classes-file", help="a file of class names, one a line (results/labelling/classes.txt)")


def _add_server(parser):
    parser.add_argument("--url", default=os.environ.get("LABEL_STUDIO_URL"),
                        help="Label Studio's URL (default: $LABEL_STUDIO_URL)")
    parser.add_argument("--token", default=os.environ.get("LABEL_STUDIO_API_KEY"),
                        help="API token (default: $LABEL_STUDIO_API_KEY)")


def _detector(args):
    """The model of the tasks command's model options, loaded and checked as the prediction stages do."""
    from detflow.lib.inference import detector as inference  # TensorFlow: only for drafts

    return inference.load_detector(args.model, score_threshold=args.score_threshold, **model_options(args))


def tasks_command(args):
    classes = _classes(args)
    frames = frames_to_label(args.selections, args.images_dir, args.annotations_dir)
    predictions = None
    if args.model:
        predictions = draft_predictions(_detector(args), frames, classes, model_version(args.model), args.batch_size)
    if args.config_out:
        _write_text(args.config_out, labelling_config(classes))
    write_tasks(args.tasks_out, make_tasks(frames, args.document_root, predictions))
    drafts = f", {len(predictions)} with the model's boxes as predictions" if predictions is not None else ""
    log.info("%d tasks (chosen frames not labelled yet%s) in %s", len(frames), drafts, args.tasks_out)


def _tasks_parser(commands):
    tasks = commands.add_parser("tasks", help="the labelling configuration and the tasks of the frames to label")
    tasks.add_argument("--selections", nargs="+", required=True, help="per-video CSVs of the frames chosen for labelling")
    tasks.add_argument("--images-dir", required=True, help="the labelling folder (results/labelling/images)")
    tasks.add_argument("--annotations-dir", required=True, help="the annotations folder: frames with a file there are left out")
    tasks.add_argument("--document-root", required=True, help="the folder Label Studio serves local files from")
    tasks.add_argument("--tasks-out", required=True, help="output tasks JSON")
    tasks.add_argument("--config-out", help="output labelling configuration XML")
    _add_classes(tasks)
    tasks.add_argument("--model", help="the inference model (.h5): add its boxes as predictions")
    tasks.add_argument("--score-threshold", type=float, help="lowest score of a predicted box (with --model)")
    tasks.add_argument("--batch-size", type=int, help="images per inference batch (with --model)")
    add_model_options(tasks, classes_option="--model-classes")


def _import_parser(commands):
    imports = commands.add_parser("import", help="Label Studio's JSON export as Pascal VOC files")
    imports.add_argument("export", help="the export (Label Studio's \"JSON\" format)")
    imports.add_argument("--images", required=True, help="the labelling folder the tasks show (results/labelling/images)")
    imports.add_argument("--out", required=True, help="folder for the VOC files (e.g. your annotations folder)")
    _add_classes(imports)


def _server_parsers(commands):
    pushes = commands.add_parser("push", help="create the project, its storage, and import the tasks")
    pushes.add_argument("tasks", help="tasks JSON (results/label_studio/tasks.json or tasks_with_drafts.json)")
    pushes.add_argument("--config", default="results/label_studio/config.xml", help="labelling configuration XML")
    pushes.add_argument("--images", default="results/labelling/images", help="the labelling folder the tasks show")
    pushes.add_argument("--title", default=DEFAULT_TITLE, help="project title (an existing one is reused)")
    _add_server(pushes)

    connects = commands.add_parser("connect", help="connect the ML backend (detflow label-studio-backend) to "
                                                   "the project: opening a task asks it for the model's boxes")
    connects.add_argument("backend_url", nargs="?", default=os.environ.get("LABEL_STUDIO_ML_BACKEND_URL"),
                          help="the backend's URL (default: $LABEL_STUDIO_ML_BACKEND_URL, as "
                               "scripts/label_studio/backend.sh prints it)")
    connects.add_argument("--title", default=DEFAULT_TITLE, help="project title")
    connects.add_argument("--project", type=int, help="project id (instead of the title)")
    connects.add_argument("--backend-title", default=BACKEND_TITLE, help="the backend's name in the project")
    _add_server(connects)

    pulls = commands.add_parser("pull", help="save a project's JSON export")
    pulls.add_argument("out", nargs="?", default=EXPORT_FILE, help=f"where to save the export (default: {EXPORT_FILE})")
    pulls.add_argument("--title", default=DEFAULT_TITLE, help="project title")
    pulls.add_argument("--project", type=int, help="project id (instead of the title)")
    _add_server(pulls)


def main(argv=None):
    parser = argparse.ArgumentParser(prog=prog("label_studio"), description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    _tasks_parser(commands)
    _import_parser(commands)
    _server_parsers(commands)
    args = parser.parse_args(argv)
    if args.command == "tasks":
        if args.model and (args.score_threshold is None or args.batch_size is None):
            parser.error("--model needs --score-threshold and --batch-size")
        tasks_command(args)
    elif args.command == "import":
        outcome = import_export(args.export, args.images, args.out, _classes(args))
        for line in outcome.written:
            print(f"wrote {line}")
        for line in outcome.left:
            print(f"left {line}")
        print(f"{len(outcome.written)} files written to {args.out}, {len(outcome.left)} tasks left")
    elif args.command == "push":
        client = LabelStudio(args.url, args.token)
        project, imported, present = push(client, args.tasks, args.config, args.images, args.title)
        print(f"project {project} ({args.title!r}): {imported} tasks imported, {present} were there already; "
              f"label at {client.url}/projects/{project}/data")
    else:
        client = LabelStudio(args.url, args.token)
        project = args.project or client.project(args.title)
        if project is None:
            raise InputError(client.url, f"no project called {args.title!r}")
        if args.command == "connect":
            if not args.backend_url:
                raise InputError("backend_url", "give the ML backend's URL (or set LABEL_STUDIO_ML_BACKEND_URL, as "
                                                "scripts/label_studio/backend.sh prints it)")
            backend, created = connect(client, project, args.backend_url, args.backend_title)
            print(f"ML backend {backend} ({args.backend_url}) {'connected to' if created else 'was connected to'} "
                  f"project {project}: opening a task without predictions asks it for the model's boxes")
            return
        count = pull(client, project, args.out)
        print(f"{count} annotated or skipped tasks of project {project} saved in {args.out}")


if __name__ == "__main__":
    run(main)

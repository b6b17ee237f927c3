"""Label Studio's ML backend for our model: Label Studio asks it for the model's boxes on a task when a
person opens the task, so every task shows the boxes of the model that runs now, without tasks
rebuilt and imported again after each training (``detflow label-studio tasks --model`` writes them
into the tasks instead, once).

Run it by hand, in the project folder (scripts/label_studio/backend.sh starts it in the background
and stops it by its PID), then connect it to the project with ``detflow label-studio connect``.

It speaks the protocol of label-studio-ml-backend (its ``label_studio_ml/api.py``) as Label Studio
1.23 calls it (``label_studio/ml/api_connector.py`` and ``ml/models.py``): HTTP with JSON bodies,

- ``GET /health`` (and ``/``): ``{"status": "UP", "model_version": ...}``. Label Studio asks it,
  with a 1 s timeout, before every batch of predictions; no answer marks the backend disconnected.
- ``POST /setup`` (``project``, ``schema`` = the labelling configuration, ``hostname``,
  ``access_token``, ``extra_params``): ``{"model_version": ...}``, within 3 s, also before every
  batch. Label Studio then asks only for the tasks that hold no prediction of that version.
- ``POST /predict`` (``tasks``: Label Studio's tasks with ``id`` and ``data``; ``project``,
  ``label_config``, ``params``): ``{"results": [...]}``, one prediction per task in the tasks'
  order, which is how Label Studio pairs them (100 s timeout). A prediction is what
  :func:`detflow.lib.labelling.label_studio.prediction` makes of the detections scoring at least
  the threshold (``rectanglelabels`` in percent of the image, scores, ``model_version`` the model
  file's name and the start of its SHA-256). A task without such boxes gets a prediction with an
  empty ``result``, and so does a task whose image is not a readable file under the document root,
  with a line in the log: Label Studio stores it and does not ask again for that model version.
- ``POST /webhook``: Label Studio adds a webhook to ``<url>/webhook`` with every ML backend and sends
  it each event; this backend does not learn from them, and says so (``"Unknown event"``).
- ``POST /train``: 501, because training is the workflow's (``snakemake``).

The image of a task is never downloaded: the task names the frame through Label Studio's local-files
serving (``/data/local-files/?d=<path>``, :func:`detflow.lib.labelling.label_studio.local_file`),
and the backend reads it from the same document root. The model is loaded once, at start; the
backend binds 127.0.0.1 only and logs one line per batch of tasks.

Refused at start, in one line: no model at the path (``labelling.draft_model`` or ``--model``), a
model whose classes differ from config's ``classes``, and a port that another program holds.
"""
import argparse
import errno
import json
import logging
import signal
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from detflow.lib.cli import InputError, fill_from_config, prog, run
from detflow.lib.config import project_config
from detflow.lib.labelling.label_studio import IMAGE_NAME, local_file, model_version, prediction
from detflow.lib.model.card import check_classes, read_card

log = logging.getLogger(__name__)

HOST = "127.0.0.1"  # Label Studio runs on this machine (scripts/label_studio/start.sh): nothing else may ask
MAX_BODY = 64 << 20  # bytes of a request body read at most; a batch of tasks is far smaller


class Backend:
    """The loaded model and what a prediction needs: the threshold, the document root, the version."""

    def __init__(self, detector, version, document_root, batch_size):
        self.detector, self.version = detector, version
        self.document_root, self.batch_size = Path(document_root), batch_size
        self.lock = threading.Lock()  # one model, one batch at a time, whatever the number of requests

    def predict(self, tasks):
        """One prediction per task, in order: the model's boxes, or an empty result (see the module's doc)."""
        from detflow.lib.inference.detector import Unreadable, detect_images  # TensorFlow: loaded already

        paths, empty = {}, {}
        for index, task in enumerate(tasks):
            path = self.image_file(task)
            if isinstance(path, Path):
                paths[index] = path
            else:
                empty[index] = path
        found = {}
        with self.lock:
            for index, image, detections in detect_images(self.detector, paths.items(), self.batch_size):
                if isinstance(image, Unreadable):
                    empty[index] = f"no readable image at {paths[index]} ({image.reason})"
                    continue
                found[index] = prediction(detections, image.shape[1], image.shape[0], self.version)
        for index, reason in sorted(empty.items()):
            log.warning("task %s: %s: empty prediction", tasks[index].get("id", "?"), reason)
        return [found.get(index) or {"result": [], "model_version": self.version} for index in range(len(tasks))]

    def image_file(self, task):
        """The task's image file, or why there is none (a string)."""
        url = (task.get("data") or {}).get(IMAGE_NAME)
        if not isinstance(url, str):
            return f"no image URL in data.{IMAGE_NAME}"
        path = local_file(url, self.document_root)
        if path is None:
            return f"its image {url} is not a local file of Label Studio's document root {self.document_root}"
        if not path.is_file():
            return f"no image at {path}"
        return path


def summary(tasks, results, seconds):
    """The log line of one batch: tasks, boxes, tasks left empty, time."""
    boxes = sum(len(item["result"]) for item in results)
    with_boxes = sum(1 for item in results if item["result"])
    projects = sorted({str(task.get("project")) for task in tasks if isinstance(task, dict) and "project" in task})
    where = f" of project {', '.join(projects)}" if projects else ""
    return (f"predict: {len(tasks)} task{'s' * (len(tasks) != 1)}{where}: {boxes} boxes on {with_boxes}, "
            f"{len(tasks) - with_boxes} without any, in {seconds:.2f} s")


class Handler(BaseHTTPRequestHandler):
    """Label Studio's requests to an ML backend; ``self.server.backend`` answers them."""

    server_version = "detflow-label-studio-backend"
    protocol_version = "HTTP/1.1"  # keep-alive: Label Studio's requests session reuses its connection

    @property
    def route(self):
        """The path without query or final slash: ``/health/?x=1`` -> ``/health``, ``/`` -> ``""``."""
        return self.path.split("?", 1)[0].rstrip("/")

    def do_GET(self):
        if self.route in ("", "/health"):
            self.answer({"status": "UP", "model_version": self.server.backend.version})
        elif self.route == "/metrics":
            self.answer({})
        else:
            self.answer({"error": f"no such resource {self.path}"}, HTTPStatus.NOT_FOUND)

    def do_POST(self):
        route = self.route
        body = self.body()
        if body is None:
            return
        if route == "/predict":
            self.predict(body)
        elif route == "/setup":
            self.answer({"model_version": self.server.backend.version})
        elif route == "/webhook":
            self.answer({"status": "Unknown event"})  # label-studio-ml's answer to an event it does not train on
        elif route == "/train":
            self.answer({"error": "this backend does not train: the workflow does (`snakemake --cores all`)"},
                        HTTPStatus.NOT_IMPLEMENTED)
        else:
            self.answer({"error": f"no such resource {self.path}"}, HTTPStatus.NOT_FOUND)

    def predict(self, body):
        tasks = body.get("tasks")
        if not isinstance(tasks, list) or not all(isinstance(task, dict) for task in tasks):
            self.answer({"error": "the request has no list of tasks ('tasks')"}, HTTPStatus.BAD_REQUEST)
            return
        start = time.monotonic()
        try:
            results = self.server.backend.predict(tasks)
        except Exception as error:  # the model failing on a batch: say so to Label Studio, serve the next one
            log.exception("predict: %d tasks failed", len(tasks))
            self.answer({"error": f"the model failed on these tasks: {error}"}, HTTPStatus.INTERNAL_SERVER_ERROR)
            return
        log.info("%s", summary(tasks, results, time.monotonic() - start))
        self.answer({"results": results})

    def body(self):
        """The request's JSON object, or None after answering 400 or 413."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True  # the unread body would be taken for the next request
            self.answer({"error": f"a body of {self.headers.get('Content-Length')} bytes"},
                        HTTPStatus.REQUEST_ENTITY_TOO_LARGE if length > MAX_BODY else HTTPStatus.BAD_REQUEST)
            return None
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except (ValueError, UnicodeDecodeError) as error:
            self.answer({"error": f"the body is not JSON ({error})"}, HTTPStatus.BAD_REQUEST)
            return None
        if not isinstance(body, dict):
            self.answer({"error": "the body is not a JSON object"}, HTTPStatus.BAD_REQUEST)
            return None
        return body

    def answer(self, content, status=HTTPStatus.OK):
        data = json.dumps(content).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The caller gave up waiting (e.g. a /health asked while the model was loading).
            self.close_connection = True
            log.debug("%s left before the answer to %s", self.address_string(), self.path)

    def log_message(self, format, *args):
        """Each request at debug level only: Label Studio asks /health and /setup before every batch."""
        log.debug("%s %s", self.address_string(), format % args)


def bind(port):
    """The server listening on 127.0.0.1:``port`` (0: a free port), not serving yet; InputError when
    another program holds the port."""
    try:
        return ThreadingHTTPServer((HOST, port), Handler)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise InputError("--port", f"{HOST}:{port} is in use (by another program?); stop it or choose another "
                                       f"port ({error.strerror})") from None
        raise InputError("--port", f"cannot listen on {HOST}:{port} ({error.strerror or error})") from None


def check_model(path, classes, where):
    """The model file's description, after refusing a missing model and one trained on other classes."""
    path = Path(path)
    if not path.exists():
        raise InputError(where, f"no model yet at {path}: `snakemake --cores all` trains one, or set "
                                "labelling.draft_model")
    card = read_card(path)
    check_classes(card, path, classes, "config's `classes`")
    return card


def load_backend(model, *, score_threshold, document_root, batch_size, threads=None):
    """The model loaded once, with its version, as a Backend."""
    from detflow.lib.inference.detector import load_detector  # TensorFlow: after the quick refusals

    version = model_version(model)
    detector = load_detector(model, score_threshold=score_threshold, threads=threads)
    return Backend(detector, version, document_root, batch_size)


def serve(server):
    """Answer requests until SIGTERM or SIGINT, then close the socket."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    host, port = server.server_address[:2]
    log.info("ML backend of model %s at http://%s:%d (connect it: detflow label-studio connect http://%s:%d)",
             server.backend.version, host, port, host, port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        log.info("stopped")


def main(argv=None):
    parser = argparse.ArgumentParser(prog=prog("label_studio_backend"), description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="the inference model (.h5; default: config's labelling.draft_model)")
    parser.add_argument("--port", type=int, help="port on 127.0.0.1 (default: config's label_studio.backend_port)")
    parser.add_argument("--document-root", help="the folder Label Studio serves local files from (default: config's "
                                                "label_studio.document_root, else the current folder)")
    parser.add_argument("--score-threshold", type=float,
                        help="lowest score of a box (default: config's prelabel.score_threshold, as the drafts)")
    parser.add_argument("--batch-size", type=int, help="images per inference batch (default: config's "
                                                       "predict.batch_size)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for TensorFlow (default: all)")
    parser.add_argument("--config", help="config.yaml that gives the defaults and the classes (default: "
                                         "./config.yaml, else the project's own)")
    args = parser.parse_args(argv)
    config = project_config(args.config)
    where = "--model" if args.model else "labelling.draft_model"
    fill_from_config(args, config, {"model": "labelling.draft_model", "port": "label_studio.backend_port",
                                    "score_threshold": "prelabel.score_threshold", "batch_size": "predict.batch_size"})
    if args.document_root is None:
        args.document_root = config["label_studio"]["document_root"] or "."
    if not 0 <= args.port <= 65535 or args.batch_size < 1:
        parser.error("--port must be 0-65535 and --batch-size at least 1")
    check_model(args.model, config["classes"], where)
    server = bind(args.port)  # before the model loads: a busy port is said at once
    try:
        server.backend = load_backend(args.model, score_threshold=args.score_threshold,
                                      document_root=args.document_root, batch_size=args.batch_size,
                                      threads=args.threads)
    except BaseException:
        server.server_close()
        raise
    serve(server)


if __name__ == "__main__":
    run(main)

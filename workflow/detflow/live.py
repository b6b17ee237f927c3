"""Live detection: the trained detector on a camera, a video file or an RTSP/HTTP
stream, with boxes, class, score and frames/s in a window, the annotated video
and the gesture events it sees.

Keeping up rather than lagging: a reader thread decodes the source as fast as
it delivers and keeps only its newest frame; the detector takes that one when
it is ready for the next, so frames that arrive meanwhile are dropped (and
counted). A camera or stream delivers in real time by itself; a video file is
played in real time too, each frame released at its time by the file's frame
rate, so the same frames are dropped as from a camera of that rate
(``--no-pace`` reads a file as fast as the detector takes frames instead:
nothing dropped, the detector's full speed). A stream or camera that stops
delivering is reopened a few times (``--reconnects``) before the run ends.
Whatever ends the run (end of the file, ``--max-frames``/``--max-seconds``,
Ctrl+C, closing the window, a lost stream) the annotated video and the events
are written complete and the frames/s and dropped counts printed.

The window is a small Qt window (PyQt5, which labelling already installs;
OpenCV's headless build has no highgui); it opens where a display exists
(DISPLAY or WAYLAND_DISPLAY) unless ``--no-window``. q, Esc or closing it end
the run.
"""
import argparse
import json
import logging
import os
import re
import signal
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

from detflow.lib.cli import InputError, run
from detflow.lib.drawing import draw_detections, draw_status
from detflow.lib.gesture_events import EventBuilder, EventSettings, event_counts, write_events
from detflow.lib.inference import add_model_options, detector_from_options
from detflow.lib.media import nominal_fps, open_video

log = logging.getLogger(__name__)

DEFAULT_MODEL = "results/model/inference.h5"
DEFAULT_CONFIG = "config.yaml"
STREAM_FPS = 25.0  # frame rate of the annotated video of a source that declares none
OPEN_TIMEOUT_MS = 5000  # give up opening a stream after this long
READ_TIMEOUT_MS = 5000  # a stream that sends no frame for this long has dropped
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


# ---------------------------------------------------------------- sources


class Source:
    """What ``--source`` names: a camera index, a stream URL or a video file."""

    def __init__(self, text):
        self.text = text
        if text.isdigit():
            self.kind, self.value = "camera", int(text)
        elif _URL.match(text):
            self.kind, self.value = "stream", text
        else:
            self.kind, self.value = "file", Path(text)

    def open(self):
        """An opened cv2.VideoCapture, or InputError saying why the source cannot be read."""
        if self.kind == "file":
            return open_video(self.value)
        timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS]
        if self.kind == "camera":
            capture = cv2.VideoCapture(self.value, cv2.CAP_ANY, timeouts)
            if not capture.isOpened():
                raise InputError(f"camera {self.value}", "no camera with this index can be opened (none connected, "
                                                         "or in use by another program)")
        else:
            capture = cv2.VideoCapture(self.value, cv2.CAP_FFMPEG, timeouts)
            if not capture.isOpened():
                raise InputError(self.value, f"stream cannot be opened (unreachable, refused or not a video stream "
                                             f"within {OPEN_TIMEOUT_MS / 1000:g} s)")
        return capture


class NewestFrame(threading.Thread):
    """Reads a source in the background and keeps only its newest frame.

    ``take`` returns (frame index, seconds, frame) of the newest frame not
    taken yet, waiting for one, or None once the source has ended
    (``ending`` says how). Frames replaced before they were taken are
    ``dropped``. ``paced``: a file's frames are released at their time by its
    frame rate; ``lossless``: none is replaced, the reader waits instead."""

    def __init__(self, source, capture, *, paced, lossless, reconnects, reconnect_delay):
        super().__init__(daemon=True, name="source reader")
        self.source, self.capture = source, capture
        self.paced, self.lossless = paced, lossless
        self.reconnects, self.reconnect_delay = reconnects, reconnect_delay
        self.fps = nominal_fps(capture)
        self.read = self.dropped = self.reconnections = 0
        self.ending = None
        self._newest = None
        self._changed = threading.Condition()
        self._halt = threading.Event()

    def run(self):
        try:
            self._read_all()
        except Exception as error:  # noqa: BLE001  (a decoder error must end the run, not hang it)
            self.ending = self.ending or f"reading stopped: {error}"
        finally:
            self.capture.release()
            with self._changed:
                self._halt.set()
                self._changed.notify_all()

    def _read_all(self):
        start = time.monotonic()
        while not self._halt.is_set():
            ok, frame = self.capture.read()
            if not ok:
                if self.source.kind == "file":
                    self.ending = "end of the video file"
                    return
                if not self._reconnect():
                    return
                continue
            index = self.read
            self.read += 1
            if self.source.kind == "file" and self.fps:
                seconds = index / self.fps
                if self.paced:
                    self._halt.wait(max(0.0, start + seconds - time.monotonic()))
            else:
                seconds = time.monotonic() - start
            with self._changed:
                while self.lossless and self._newest is not None and not self._halt.is_set():
                    self._changed.wait(0.1)
                if self._newest is not None:
                    self.dropped += 1
                self._newest = (index, seconds, frame)
                self._changed.notify_all()

    def _reconnect(self):
        """Reopen a stream or camera that stopped delivering; whether it delivers again."""
        for attempt in range(1, self.reconnects + 1):
            log.warning("%s: no frame; reconnecting (attempt %d of %d)", self.source.text, attempt, self.reconnects)
            self.capture.release()
            if self._halt.wait(self.reconnect_delay):
                return False
            try:
                self.capture = self.source.open()
            except InputError:
                continue
            self.reconnections += 1
            return True
        self.ending = f"the source stopped delivering frames and {self.reconnects} reconnection attempts failed"
        return False

    def take(self, timeout=0.1):
        """The newest frame not taken yet; None when there is none within ``timeout`` seconds while the
        source runs (try again), or once it has ended (``finished``)."""
        with self._changed:
            if self._newest is None and not self._halt.is_set():
                self._changed.wait(timeout)
            frame, self._newest = self._newest, None
            self._changed.notify_all()
            return frame

    @property
    def finished(self):
        return self._halt.is_set() and self._newest is None

    def stop(self):
        self._halt.set()


# ---------------------------------------------------------------- window


class Window:
    """A Qt window showing each annotated frame; q, Esc or closing it ask the run to end."""

    def __init__(self, title):
        from PyQt5 import QtCore, QtGui, QtWidgets

        self._gui = QtGui
        self.app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["detflow live"])
        self.closed = False
        owner = self

        class View(QtWidgets.QLabel):
            def closeEvent(self, event):
                owner.closed = True
                event.accept()

            def keyPressEvent(self, event):
                if event.key() in (QtCore.Qt.Key_Q, QtCore.Qt.Key_Escape):
                    self.close()

        self.view = View()
        self.view.setWindowTitle(title)
        self.sized = False

    def show(self, frame):
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        height, width = rgb.shape[:2]
        image = self._gui.QImage(rgb.data, width, height, 3 * width, self._gui.QImage.Format_RGB888)
        self.view.setPixmap(self._gui.QPixmap.fromImage(image))  # fromImage copies the pixels
        if not self.sized:
            self.view.resize(width, height)
            self.view.show()
            self.sized = True
        self.app.processEvents()

    def close(self):
        self.view.close()
        self.app.processEvents()


def display_available():
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


# ---------------------------------------------------------------- the run


class Stopper:
    """Ctrl+C (SIGINT) and SIGTERM end the run at the next frame instead of interrupting it."""

    def __init__(self):
        self.reason = None
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, self._stop)

    def _stop(self, number, _frame):
        self.reason = "stopped by Ctrl+C" if number == signal.SIGINT else "stopped by SIGTERM"


def live(detector, source, *, settings, out_video=None, events_path=None, max_frames=None, max_seconds=None,
         window=None, paced=True, reconnects=3, reconnect_delay=1.0, stopper=None):
    """Detect on ``source`` until it ends or a bound or the user stops the run; write the outputs; return
    a summary: frames read, processed and dropped, frames/s, events per class and how the run ended."""
    capture = source.open()
    reader = NewestFrame(source, capture, paced=paced and source.kind == "file", lossless=not paced and
                         source.kind == "file", reconnects=reconnects, reconnect_delay=reconnect_delay)
    builder, writer, processed, ending = EventBuilder(settings), None, 0, None
    out_fps = reader.fps or STREAM_FPS
    _warm_up(detector, capture)
    started = time.monotonic()
    reader.start()
    try:
        while ending is None:
            item = reader.take()
            if item is None:
                if reader.finished:
                    ending = reader.ending
                elif stopper is not None and stopper.reason:
                    ending = stopper.reason
                continue
            index, seconds, frame = item
            network_input, scale = detector.prepare(frame)
            detections = detector.detect([network_input], [scale])[0]
            for event in builder.add(processed, index, seconds, detections):
                log.info("event: %s on track %d, %.2f-%.2f s, %d frames, peak score %.2f", event.name, event.track,
                         event.start_s, event.end_s, event.frames, max(event.scores))
            processed += 1
            rate = processed / max(time.monotonic() - started, 1e-6)
            draw_detections(frame, detections)
            draw_status(frame, f"{rate:.1f} frames/s  dropped {reader.dropped}")
            if out_video is not None:
                writer = writer or _video_writer(out_video, frame, out_fps)
                writer.write(frame)
            if window is not None:
                window.show(frame)
            ending = _bound_reached(processed, started, max_frames, max_seconds, window, stopper)
    finally:
        reader.stop()
        reader.join(timeout=10)
        if writer is not None:
            writer.release()
        if window is not None:
            window.close()
    elapsed = time.monotonic() - started
    builder.finish()
    summary = {"source": source.text, "frames_read": reader.read, "frames_processed": processed,
               "frames_dropped": reader.dropped, "seconds": round(elapsed, 3),
               "frames_per_second": round(processed / elapsed, 2) if elapsed > 0 else None,
               "reconnections": reader.reconnections, "ended": ending,
               "score_threshold": detector.score_threshold, "event_settings": vars(settings),
               "events_per_class": event_counts(builder.events, detector.names.values())}
    if events_path is not None:
        kind = "json_path" if Path(events_path).suffix.lower() == ".json" else "csv_path"
        write_events(builder.events, about=summary, **{kind: events_path})
    return summary


def _warm_up(detector, capture):
    """One detection on a blank frame of the source's size, so that the model's first call (its graph
    being traced, seconds) happens before frames are timed and dropped."""
    width, height = (int(capture.get(prop)) for prop in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT))
    if width > 0 and height > 0:
        detector.detect(*(
            [value] for value in detector.prepare(np.zeros((height, width, 3), np.uint8))))


def _bound_reached(processed, started, max_frames, max_seconds, window, stopper):
    if stopper is not None and stopper.reason:
        return stopper.reason
    if window is not None and window.closed:
        return "window closed"
    if max_frames is not None and processed >= max_frames:
        return f"--max-frames {max_frames} reached"
    if max_seconds is not None and time.monotonic() - started >= max_seconds:
        return f"--max-seconds {max_seconds:g} reached"
    return None


def _video_writer(path, frame, fps):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frame.shape[1], frame.shape[0]))
    if not writer.isOpened():
        raise InputError(path, "cannot be written by OpenCV's VideoWriter (MPEG-4)")
    return writer


# ---------------------------------------------------------------- command line


def _config_defaults(path):
    """Score threshold and event settings from the project's config.yaml (predict.score_threshold and
    events), or the built-in ones where there is no such file."""
    path = Path(path)
    if not path.is_file():
        return 0.5, EventSettings()
    try:
        config = yaml.safe_load(path.read_text()) or {}
        return config["predict"]["score_threshold"], EventSettings.from_config(config["events"])
    except (yaml.YAMLError, KeyError, TypeError) as error:
        raise InputError(path, f"no predict.score_threshold and events section to take defaults from ({error})")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m detflow.live", description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True,
                        help="camera index (0, 1, ...), video file, or rtsp:// / http(s):// stream URL")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"the inference model (.h5; default {DEFAULT_MODEL})")
    parser.add_argument("--config", default=DEFAULT_CONFIG,
                        help="config.yaml whose predict.score_threshold and events section give the defaults "
                             "(built-in ones when it does not exist)")
    parser.add_argument("--score-threshold", type=float, help="lowest score shown and tracked")
    parser.add_argument("--min-frames", type=int, help="frames a class must be seen on a track to make an event")
    parser.add_argument("--max-gap", type=int, help="frames without it an event survives")
    parser.add_argument("--track-iou", type=float, help="IoU that links a box to a track's last box")
    parser.add_argument("--no-window", action="store_true", help="run without a window, even where a display exists")
    parser.add_argument("--out", help="annotated video to write (.mp4)")
    parser.add_argument("--events", help="gesture events to write: .json, or CSV for any other name")
    parser.add_argument("--max-frames", type=int, help="stop after this many processed frames")
    parser.add_argument("--max-seconds", type=float, help="stop after this many seconds")
    parser.add_argument("--no-pace", action="store_true",
                        help="read a video file as fast as the detector takes frames (none dropped) instead of "
                             "in real time")
    parser.add_argument("--reconnects", type=int, default=3, help="reconnection attempts when a stream stops")
    parser.add_argument("--reconnect-delay", type=float, default=1.0, help="seconds before each attempt")
    add_model_options(parser)
    args = parser.parse_args(argv)
    score, settings = _config_defaults(args.config)
    args.score_threshold = score if args.score_threshold is None else args.score_threshold
    settings = EventSettings(*(getattr(args, name) if getattr(args, name) is not None else getattr(settings, name)
                               for name in ("min_frames", "max_gap", "track_iou")))
    source = Source(args.source)
    if source.kind == "file" and not source.value.is_file():
        raise InputError(source.value, "video file not found (a camera is a number, a stream a URL)")
    stopper = Stopper()
    detector = detector_from_options(args)
    window = None
    if not args.no_window:
        if display_available():
            window = Window(f"detflow live: {args.source}")
        else:
            log.info("no display (DISPLAY and WAYLAND_DISPLAY unset): running without a window")
    summary = live(detector, source, settings=settings, out_video=args.out, events_path=args.events,
                   max_frames=args.max_frames, max_seconds=args.max_seconds, window=window,
                   paced=not args.no_pace, reconnects=args.reconnects, reconnect_delay=args.reconnect_delay,
                   stopper=stopper)
    print(f"live: {summary['frames_processed']} frames processed in {summary['seconds']:.1f} s "
          f"({summary['frames_per_second']} frames/s), {summary['frames_dropped']} of {summary['frames_read']} "
          f"read dropped; events {json.dumps(summary['events_per_class'])}; ended: {summary['ended']}", flush=True)


if __name__ == "__main__":
    run(main)

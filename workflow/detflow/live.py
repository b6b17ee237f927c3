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

The window is a small Tk window (Python's tkinter, with Pillow's ImageTk):
OpenCV's headless build has no highgui, and PyQt5's Qt and TensorFlow in one
process abort it at exit ("free(): invalid pointer"). It opens where a display
exists (DISPLAY or WAYLAND_DISPLAY) unless ``--no-window``; q, Esc or closing
it end the run.
"""
import argparse
import json
import logging
import os
import re
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from detflow.lib.cli import InputError, add_model_options, fill_from_config, model_options, prog, run
from detflow.lib.config import project_config
from detflow.lib.data.videos import STREAM_TIMEOUTS, nominal_fps, open_stream, open_video, quiet_opencv
from detflow.lib.inference.detector import load_detector
from detflow.lib.inference.drawing import draw_detections, draw_status
from detflow.lib.inference.events import EventBuilder, EventSettings, event_counts, write_events
from detflow.lib.model.runtimes import RUNTIMES
from detflow.lib.stopping import Stopper

log = logging.getLogger(__name__)

DEFAULT_MODEL = "results/model/inference.h5"
STREAM_FPS = 25.0  # frame rate of the annotated video of a source that declares none
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
        if self.kind == "stream":
            return open_stream(self.value)
        capture = cv2.VideoCapture(self.value, cv2.CAP_ANY, STREAM_TIMEOUTS)
        if not capture.isOpened():
            raise InputError(f"camera {self.value}", "no camera with this index can be opened (none connected, "
                                                     "or in use by another program)")
        return capture


class NewestFrame(threading.Thread):
    """Reads a source in the background and keeps only its newest frame.

    ``take`` returns (frame index, seconds, frame) of the newest frame not
    taken yet, waiting for one, or None once the source has ended
    (``ending`` says how). Frames replaced before they were taken are
    ``dropped``. ``paced``: a file's frames are released at their time by its
    frame rate; ``lossless``: none is replaced, the reader waits instead.

    Started, the reader keeps a stream or camera drained (frames before
    ``begin`` are discarded, so that nothing piles up while the model loads)
    and holds a file at its first frame until ``begin``."""

    def __init__(self, source, *, paced, lossless, reconnects, reconnect_delay):
        super().__init__(daemon=True, name="source reader")
        self.source, self.capture = source, source.open()
        self.paced, self.lossless = paced and source.kind == "file", lossless and source.kind == "file"
        self.reconnects, self.reconnect_delay = reconnects, reconnect_delay
        self.fps = nominal_fps(self.capture)
        self.frame_size = tuple(int(self.capture.get(prop))
                                for prop in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT))
        self.read = self.dropped = self.reconnections = 0
        self._begun = threading.Event()
        self._start = None
        self.ending, self.lost = None, False
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

    def begin(self):
        """Start handing frames over (and timing and counting them)."""
        self._start = time.monotonic()
        self._begun.set()

    def _read_all(self):
        if self.source.kind == "file":
            while not self._begun.wait(0.1):
                if self._halt.is_set():
                    return
        while not self._halt.is_set():
            ok, frame = self.capture.read()
            if not ok:
                if self.source.kind == "file":
                    self.ending = "end of the video file"
                    return
                if not self._reconnect():
                    return
                continue
            if not self._begun.is_set():
                self.frame_size = frame.shape[1], frame.shape[0]
                continue
            index = self.read
            self.read += 1
            if self.source.kind == "file" and self.fps:
                seconds = index / self.fps
                if self.paced:
                    self._halt.wait(max(0.0, self._start + seconds - time.monotonic()))
            else:
                seconds = time.monotonic() - self._start
            with self._changed:
                while self.lossless and self._newest is not None and not self._halt.is_set():
                    self._changed.wait(0.1)
                if self._halt.is_set():
                    return
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
        self.lost = True
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
    """A Tk window showing each annotated frame; q, Esc or closing it ask the run to end."""

    def __init__(self, title):
        try:
            import tkinter

            self.root = tkinter.Tk()
        except ImportError:
            raise InputError("window", "Python's tkinter is not installed (e.g. apt-get install python3-tk); "
                                       "or run with --no-window") from None
        except tkinter.TclError as error:
            raise InputError("window", f"cannot open one on the display ({error}); run with --no-window") from None
        self.root.title(title)
        self.root.protocol("WM_DELETE_WINDOW", self._close)
        for key in ("q", "<Escape>"):
            self.root.bind(key, lambda _event: self._close())
        self.view = tkinter.Label(self.root, borderwidth=0, padx=0, pady=0, highlightthickness=0)
        self.view.pack()
        self.closed = False

    def _close(self):
        self.closed = True

    def show(self, frame):
        from PIL import Image, ImageTk

        image = ImageTk.PhotoImage(Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)))
        self.view.configure(image=image)
        self.view.image = image  # Tk keeps no reference of its own
        self.poll()

    def poll(self):
        """Handle the window's events (keys, closing, redrawing)."""
        self.root.update()

    def close(self):
        self.root.destroy()


def display_available():
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


# ---------------------------------------------------------------- the run


def live(detector, reader, *, settings, out_video=None, events_path=None, max_frames=None, max_seconds=None,
         window=None, stopper=None):
    """Detect on the frames of a started ``reader`` until its source ends or is lost, or a bound or the
    user stops the run; write the outputs; return a summary: frames read, processed and dropped,
    frames/s, events per class, how the run ended and whether the source was lost."""
    source = reader.source
    builder, writer, processed, ending = EventBuilder(settings), None, 0, None
    out_fps = reader.fps or STREAM_FPS
    _warm_up(detector, reader.frame_size)
    started = time.monotonic()
    reader.begin()
    log.info("detecting on %s (%s)%s", source.text, source.kind, "; Ctrl+C ends" if stopper else "")
    try:
        while ending is None:
            item = reader.take()
            if item is None:  # no new frame yet: keep the window responsive and the bounds checked
                if window is not None:
                    window.poll()
                ending = reader.ending if reader.finished else _bound_reached(processed, started, max_frames,
                                                                             max_seconds, window, stopper)
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
               "reconnections": reader.reconnections, "ended": ending, "source_lost": reader.lost,
               "score_threshold": detector.score_threshold, "event_settings": vars(settings),
               "events_per_class": event_counts(builder.events, detector.names.values())}
    if events_path is not None:
        kind = "json_path" if Path(events_path).suffix.lower() == ".json" else "csv_path"
        write_events(builder.events, about=summary, **{kind: events_path})
    return summary


def _warm_up(detector, frame_size):
    """One detection on a blank frame of the source's size, so that the model's first call (its graph
    being traced, seconds) happens before frames are timed and dropped."""
    width, height = frame_size
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


def main(argv=None):
    parser = argparse.ArgumentParser(prog=prog("live"), description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True,
                        help="camera index (0, 1, ...), video file, or rtsp:// / http(s):// stream URL")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"the inference model (.h5; default {DEFAULT_MODEL})")
    parser.add_argument("--config", help="config.yaml that gives the defaults: predict.score_threshold, the events "
                                          "and live sections (default: ./config.yaml, else the project's own)")
    parser.add_argument("--score-threshold", type=float, help="lowest score shown and tracked")
    parser.add_argument("--min-frames", type=int, help="frames a class must be seen on a track to make an event")
    parser.add_argument("--max-gap", type=int, help="frames without it an event survives")
    parser.add_argument("--track-iou", type=float, help="IoU that links a box to a track's last box")
    parser.add_argument("--merge-iou", type=float,
                        help="IoU at which boxes of one frame are one hand (the best-scoring one is tracked)")
    parser.add_argument("--no-window", action="store_true", help="run without a window, even where a display exists")
    parser.add_argument("--out", help="annotated video to write (.mp4)")
    parser.add_argument("--events", help="gesture events to write: .json, or CSV for any other name")
    parser.add_argument("--max-frames", type=int, help="stop after this many processed frames")
    parser.add_argument("--max-seconds", type=float, help="stop after this many seconds")
    parser.add_argument("--no-pace", action="store_true",
                        help="read a video file as fast as the detector takes frames (none dropped) instead of "
                             "in real time")
    parser.add_argument("--reconnects", type=int, help="reconnection attempts when a stream stops")
    parser.add_argument("--reconnect-delay", type=float, help="seconds before each attempt")
    add_model_options(parser, runtimes=RUNTIMES)
    args = parser.parse_args(argv)
    fill_from_config(args, project_config(args.config), {
        "score_threshold": "predict.score_threshold", "min_frames": "events.min_frames",
        "max_gap": "events.max_gap", "track_iou": "events.track_iou", "merge_iou": "events.merge_iou",
        "reconnects": "live.reconnects", "reconnect_delay": "live.reconnect_delay"})
    settings = EventSettings(args.min_frames, args.max_gap, args.track_iou, args.merge_iou)
    quiet_opencv()
    source = Source(args.source)
    if source.kind == "file" and not source.value.exists():
        raise InputError(source.value, "video file not found (a camera is a number, a stream a URL)")
    # Opened before the model loads, so that a wrong source is said at once.
    reader = NewestFrame(source, paced=not args.no_pace, lossless=args.no_pace, reconnects=args.reconnects,
                         reconnect_delay=args.reconnect_delay)
    reader.start()
    stopper = Stopper()
    detector = load_detector(args.model, score_threshold=args.score_threshold, **model_options(args))
    window = None
    if not args.no_window:
        if display_available():
            window = Window(f"detflow live: {args.source}")
        else:
            log.info("no display (DISPLAY and WAYLAND_DISPLAY unset): running without a window")
    summary = live(detector, reader, settings=settings, out_video=args.out, events_path=args.events,
                   max_frames=args.max_frames, max_seconds=args.max_seconds, window=window, stopper=stopper)
    print(f"live: {summary['frames_processed']} frames processed in {summary['seconds']:.1f} s "
          f"({summary['frames_per_second']} frames/s), {summary['frames_dropped']} of {summary['frames_read']} "
          f"read dropped; events {json.dumps(summary['events_per_class'])}; ended: {summary['ended']}", flush=True)
    if summary["source_lost"]:
        raise InputError(source.text, f"{summary['ended']}; the outputs hold everything up to there")


if __name__ == "__main__":
    run(main)

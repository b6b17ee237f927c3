"""Gesture events: detections linked across frames into tracks, and tracks
turned into events (a class shown from one time to another), plus how well
events match a video's per-frame truth.

Tracking links each frame's boxes to the tracks seen in the last
``max_gap + 1`` frames by IoU, one box per track (the assignment of largest
total IoU, scipy's ``linear_sum_assignment``), whatever their classes: a
hand stays one track when its predicted class flickers. Boxes of one frame
that overlap by ``merge_iou`` or more are one hand (the model saw it as two
classes at once): only the best-scoring one is tracked. An event is one class
on one track. Hysteresis keeps one flicker from splitting or making an
event: an event needs ``min_frames`` frames with that class before it counts,
and stays open across up to ``max_gap`` frames without it.

Frames here are the frames the detector saw (every predicted frame; in live
use, the frames not dropped), numbered by the caller's ``step``; each event
also keeps the source's frame indices and times.
"""
import csv
import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from scipy.optimize import linear_sum_assignment

from detflow.lib.files import replacing, write_atomically
from detflow.lib.metrics.boxes import iou_matrix

# Truth boxes of one hand in consecutive frames overlap far more than this: the truth's appearances do not
# depend on the tracker's settings, so that settings can be compared on the same appearances.
TRUTH_LINK_IOU = 0.3
EVENT_COLUMNS = ("event", "track", "class", "start_frame", "end_frame", "start_s", "end_s", "frames", "peak_score",
                 "mean_score")


@dataclass(frozen=True)
class EventSettings:
    """Tracking and hysteresis (config.yaml's ``events`` section)."""

    min_frames: int
    max_gap: int
    track_iou: float
    merge_iou: float

    @classmethod
    def from_config(cls, section):
        return cls(**{item.name: section[item.name] for item in fields(cls)})


class IouTracker:
    """Track ids for each frame's boxes: a box continues the track whose last box it overlaps most
    (IoU at least ``min_iou``, seen at most ``max_gap`` frames before), else starts a new track."""

    def __init__(self, min_iou, max_gap):
        self.min_iou, self.max_gap = min_iou, max_gap
        self.tracks = {}  # track id: (last step seen, last box)
        self.next_id = 1

    def update(self, step, boxes):
        """The track id of each box of frame ``step``, in order."""
        self.tracks = {track: seen for track, seen in self.tracks.items() if step - seen[0] <= self.max_gap + 1}
        ids, live = [None] * len(boxes), list(self.tracks)
        if boxes and live:
            overlap = iou_matrix(boxes, [self.tracks[track][1] for track in live])
            for row, column in zip(*linear_sum_assignment(overlap, maximize=True)):
                if overlap[row, column] >= self.min_iou:
                    ids[row] = live[column]
        for index, box in enumerate(boxes):
            if ids[index] is None:
                ids[index] = self.next_id
                self.next_id += 1
            self.tracks[ids[index]] = (step, tuple(box))
        return ids


@dataclass
class GestureEvent:
    """One class shown on one track: its first and last frame (source index and seconds), the
    frames it was detected in, its peak and mean score, and its box in each of those frames."""

    track: int
    name: str
    start_frame: int
    start_s: float
    end_frame: int = 0
    end_s: float = 0.0
    last_step: int = 0
    scores: list = field(default_factory=list)
    boxes: dict = field(default_factory=dict)  # source frame index: box

    @property
    def frames(self):
        return len(self.scores)

    def add(self, step, frame_index, timestamp, score, box):
        self.end_frame, self.end_s, self.last_step = frame_index, timestamp, step
        self.scores.append(score)
        self.boxes[frame_index] = tuple(box)

    def summary(self):
        return {"track": self.track, "class": self.name, "start_frame": self.start_frame, "end_frame": self.end_frame,
                "start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3), "frames": self.frames,
                "peak_score": round(max(self.scores), 4), "mean_score": round(sum(self.scores) / self.frames, 4)}

    def as_dict(self):
        return {**self.summary(), "boxes": [[frame, *(round(value, 1) for value in box)]
                                            for frame, box in self.boxes.items()]}


def one_per_hand(detections, merge_iou):
    """The detections of one frame without those overlapping a better-scoring one by ``merge_iou`` or more,
    whatever their classes: a hand the model sees as two classes at once is one hand, of its best class."""
    kept = []
    for detection in sorted(detections, key=lambda item: -item.score):
        if not kept or iou_matrix([detection.box], [item.box for item in kept]).max() < merge_iou:
            kept.append(detection)
    return kept


class EventBuilder:
    """Turns each frame's detections into events as frames come (live) or at the end of a video.

    ``add`` returns the events that closed with that frame; ``finish`` the
    ones still open. ``events`` holds every event closed so far, in order of
    their start."""

    def __init__(self, settings):
        self.settings = settings
        self.tracker = IouTracker(settings.track_iou, settings.max_gap)
        self.open = {}  # (track, class): GestureEvent, counting once it has min_frames frames
        self.events = []

    def add(self, step, frame_index, timestamp, detections):
        detections = one_per_hand(detections, self.settings.merge_iou)
        tracks = self.tracker.update(step, [detection.box for detection in detections])
        for track, detection in zip(tracks, detections):
            key = (track, detection.name)
            if key not in self.open:
                self.open[key] = GestureEvent(track, detection.name, frame_index, timestamp)
            self.open[key].add(step, frame_index, timestamp, detection.score, detection.box)
        ended = [key for key, event in self.open.items() if step - event.last_step > self.settings.max_gap]
        return self._close(ended)

    def finish(self):
        return self._close(list(self.open))

    def _close(self, keys):
        closed = [event for event in (self.open.pop(key) for key in keys) if event.frames >= self.settings.min_frames]
        self.events.extend(closed)
        self.events.sort(key=lambda event: (event.start_frame, event.track))
        return closed


def video_events(frames, settings):
    """The events of a predicted video: ``frames`` are (frame index, seconds, detections) in order."""
    builder = EventBuilder(settings)
    for step, (frame_index, timestamp, detections) in enumerate(frames):
        builder.add(step, frame_index, timestamp, detections)
    builder.finish()
    return builder.events


def event_counts(events, names):
    """Events per class, for every class of ``names`` in order."""
    return {name: sum(1 for event in events if event.name == name) for name in names}


def write_events(events, *, csv_path=None, json_path=None, about=None):
    """The events as CSV (one row each) and/or JSON (``about`` the source, and each event with its boxes)."""
    if csv_path:
        with replacing(csv_path) as partial, open(partial, "w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(EVENT_COLUMNS)
            writer.writerows([number, *event.summary().values()] for number, event in enumerate(events, 1))
    if json_path:
        content = {**(about or {}), "events": [{"event": number, **event.as_dict()}
                                               for number, event in enumerate(events, 1)]}
        write_atomically(json_path, json.dumps(content, indent=1) + "\n")


# ---------------------------------------------------------------- comparison with the truth


@dataclass
class BoxRun:
    """One class on a run of frames, with its box in each: a true gesture appearance, or an event."""

    name: str
    boxes: dict  # frame index: box


def truth_appearances(truth, settings):
    """The gesture appearances of per-frame truth ({frame: [(class, xmin, ymin, xmax, ymax)]}, as
    lib.gesture_truth reads it): boxes linked from frame to frame (IoU >= TRUTH_LINK_IOU), without gaps, split
    where the class changes. Appearances of fewer than ``min_frames`` frames are left out: no event
    can be that short."""
    tracker, runs, current = IouTracker(TRUTH_LINK_IOU, max_gap=0), [], {}
    for frame in range(max(truth, default=-1) + 1):
        rows = truth.get(frame, [])
        tracks = tracker.update(frame, [row[1:] for row in rows])
        seen = {}
        for track, (name, *box) in zip(tracks, rows):
            run = current.get(track)
            if run is None or run.name != name:
                run = BoxRun(name, {})
                runs.append(run)
            run.boxes[frame] = tuple(box)
            seen[track] = run
        current = seen
    return [run for run in runs if len(run.boxes) >= settings.min_frames]


def match_events(appearances, events, min_iou=0.5):
    """How the events cover the true appearances: each event goes to the appearance of its class whose
    boxes it overlaps (IoU >= ``min_iou``) in the most frames. Counts of appearances with exactly one
    event, none, and several, and of events that match no appearance."""
    assigned = [0] * len(appearances)
    unmatched = 0
    for event in events:
        best, best_frames = None, 0
        for index, appearance in enumerate(appearances):
            if appearance.name != event.name:
                continue
            frames = sum(1 for frame, box in event.boxes.items() if frame in appearance.boxes
                         and iou_matrix([box], [_pixel_box(appearance.boxes[frame])])[0, 0] >= min_iou)
            if frames > best_frames:
                best, best_frames = index, frames
        if best is None:
            unmatched += 1
        else:
            assigned[best] += 1
    return {"appearances": len(appearances), "exactly_one": assigned.count(1), "none": assigned.count(0),
            "several": sum(1 for count in assigned if count > 1), "events": len(events), "unmatched_events": unmatched}


def _pixel_box(box):
    """Truth boxes name their first and last pixel (inclusive); detections use pixel edges."""
    xmin, ymin, xmax, ymax = box
    return xmin, ymin, xmax + 1, ymax + 1


def read_events(path):
    """(settings, events as BoxRuns) of an events JSON that write_events wrote."""
    content = json.loads(Path(path).read_text())
    events = [BoxRun(item["class"], {frame: tuple(box) for frame, *box in item["boxes"]}) for item in content["events"]]
    return EventSettings.from_config(content["event_settings"]), events


def truth_match_totals(pairs):
    """match_events summed over (truth, events JSON path) pairs of videos, with the share of appearances
    that became exactly one event."""
    totals = {}
    for truth, events_path in pairs:
        settings, events = read_events(events_path)
        for key, value in match_events(truth_appearances(truth, settings), events).items():
            totals[key] = totals.get(key, 0) + value
    appearances = totals.get("appearances", 0)
    return {**totals, "exactly_one_share": totals["exactly_one"] / appearances if appearances else None}

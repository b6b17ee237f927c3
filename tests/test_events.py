"""Gesture events from detections: tracks by IoU, hysteresis against flicker, the events files, and
how many true gesture appearances of a demo video become exactly one event."""
import csv
import json

import numpy as np
import pytest

from detflow.demo import generate_video
from detflow.lib.data.gesture_truth import read_truth
from detflow.lib.inference.detector import Detection
from detflow.lib.inference.events import (
    EVENT_COLUMNS, EventSettings, IouTracker, match_events, read_events, truth_appearances, video_events, write_events,
)

SETTINGS = EventSettings(min_frames=3, max_gap=4, track_iou=0.3, merge_iou=0.5)
FPS = 10


def hand(name, x, score=0.8, y=40):
    return Detection(0 if name == "grab" else 1, name, score, (x, y, x + 40.0, y + 50.0))


def frames(per_frame):
    """(frame index, seconds, detections) of consecutive frames at FPS."""
    return [(index, index / FPS, detections) for index, detections in enumerate(per_frame)]


def summaries(events):
    return [(event.name, event.start_frame, event.end_frame, event.frames) for event in events]


def test_a_steady_hand_is_one_event_with_its_times_and_scores():
    scores = [0.6, 0.9, 0.7, 0.8]
    events = video_events(frames([[]] * 2 + [[hand("grab", 10 + 3 * i, score)] for i, score in enumerate(scores)]
                                 + [[]] * 3), SETTINGS)
    assert summaries(events) == [("grab", 2, 5, 4)]
    summary = events[0].summary()
    assert (summary["start_s"], summary["end_s"], summary["peak_score"], summary["mean_score"]) == (0.2, 0.5, 0.9, 0.75)


def test_missed_frames_and_one_flicker_of_the_class_do_not_split_an_event():
    per_frame = [[hand("grab", 10 + 2 * i)] for i in range(20)]
    per_frame[5] = []  # missed
    per_frame[6] = []
    per_frame[9] = [hand("drop", 28)]  # the class flickers for one frame
    per_frame[14] = [hand("drop", 38), ]
    events = video_events(frames(per_frame), SETTINGS)
    assert summaries(events) == [("grab", 0, 19, 16)]


def test_a_gap_longer_than_max_gap_ends_the_event_and_a_short_blip_is_none():
    per_frame = [[hand("grab", 10)]] * 6 + [[]] * (SETTINGS.max_gap + 1) + [[hand("grab", 10)]] * 6
    per_frame += [[]] * 5 + [[hand("drop", 100)]] * (SETTINGS.min_frames - 1)  # too short for an event
    events = video_events(frames(per_frame), SETTINGS)
    assert summaries(events) == [("grab", 0, 5, 6), ("grab", 11, 16, 6)]


def test_two_hands_at_once_are_two_tracks_and_two_events():
    per_frame = [[hand("grab", 10 + i), hand("grab", 200 - i, score=0.7)] for i in range(10)]
    events = video_events(frames(per_frame), SETTINGS)
    assert summaries(events) == [("grab", 0, 9, 10), ("grab", 0, 9, 10)]
    assert len({event.track for event in events}) == 2
    assert events[0].boxes[0] != events[1].boxes[0]


def test_a_hand_seen_as_both_classes_at_once_is_one_event_of_its_best_class():
    per_frame = [[hand("grab", 10 + i, score=0.9), hand("drop", 11 + i, score=0.6)] for i in range(8)]
    events = video_events(frames(per_frame), SETTINGS)
    assert summaries(events) == [("grab", 0, 7, 8)]
    apart = video_events(frames(per_frame), EventSettings(3, 4, 0.3, merge_iou=1.0))  # merging off
    assert len(apart) > 1 and {event.name for event in apart} == {"grab", "drop"}  # what merging prevents


def test_the_tracker_links_by_overlap_and_forgets_after_the_gap():
    tracker = IouTracker(min_iou=0.3, max_gap=1)
    first = tracker.update(0, [(0, 0, 10, 10), (50, 50, 60, 60)])
    assert tracker.update(1, [(51, 50, 61, 60), (1, 0, 11, 10)]) == first[::-1]
    assert tracker.update(4, [(1, 0, 11, 10)]) not in ([first[0]], [first[1]])  # three frames unseen: a new track


def test_events_are_written_as_csv_and_json_and_read_back(tmp_path):
    events = video_events(frames([[hand("grab", 10 + i)] for i in range(5)]), SETTINGS)
    write_events(events, csv_path=tmp_path / "e.csv", json_path=tmp_path / "e.json",
                 about={"video": "take.mp4", "event_settings": vars(SETTINGS)})
    with open(tmp_path / "e.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert tuple(rows[0]) == EVENT_COLUMNS and [(row["class"], row["frames"]) for row in rows] == [("grab", "5")]
    assert json.loads((tmp_path / "e.json").read_text())["events"][0]["boxes"][0] == [0, 10, 40, 50, 90]
    settings, read = read_events(tmp_path / "e.json")
    assert settings == SETTINGS and read[0].name == "grab" and read[0].boxes[4] == (14, 40, 54, 90)


@pytest.fixture(scope="module")
def demo_truth(tmp_path_factory):
    """The per-frame truth of a real demo video (8 s at 15 frames/s)."""
    folder = tmp_path_factory.mktemp("demo")
    generate_video(folder / "demo_00.mp4", folder / "demo_00.csv", index=0, seed=11, seconds=8, fps=15, width=320,
                   height=240, classes=["grab", "drop"])
    return read_truth(folder / "demo_00.csv")


def noisy_detections(truth, seed=0, miss=0.15, flip=0.05, jitter=3.0):
    """A detector's view of the truth: each box missed with probability ``miss``, its class flipped with
    probability ``flip``, its corners moved by up to ``jitter`` pixels."""
    random = np.random.default_rng(seed)
    per_frame = []
    for frame in range(max(truth) + 1):
        detections = []
        for name, *box in truth.get(frame, []):
            if random.random() < miss:
                continue
            if random.random() < flip:
                name = "drop" if name == "grab" else "grab"
            box = tuple(float(value) + random.uniform(-jitter, jitter) for value in box)
            detections.append(Detection(0 if name == "grab" else 1, name, float(random.uniform(0.5, 1)), box))
        per_frame.append(detections)
    return frames(per_frame)


def test_the_demo_truth_becomes_one_event_per_appearance_despite_misses_and_flicker(demo_truth):
    appearances = truth_appearances(demo_truth, SETTINGS)
    assert len(appearances) >= 3 and {run.name for run in appearances} == {"grab", "drop"}
    perfect = match_events(appearances, video_events(noisy_detections(demo_truth, miss=0, flip=0, jitter=0),
                                                     SETTINGS))
    assert perfect["exactly_one"] == perfect["appearances"] == perfect["events"]
    noisy = match_events(appearances, video_events(noisy_detections(demo_truth), SETTINGS))
    assert noisy["exactly_one"] >= 0.95 * noisy["appearances"], noisy
    assert noisy["unmatched_events"] == 0, noisy


def test_without_hysteresis_the_same_noise_splits_appearances(demo_truth):
    """What the hysteresis is for: with no gap tolerated, missed frames split appearances."""
    appearances = truth_appearances(demo_truth, SETTINGS)
    strict = EventSettings(min_frames=1, max_gap=0, track_iou=0.3, merge_iou=0.5)
    noisy = match_events(appearances, video_events(noisy_detections(demo_truth), strict))
    assert noisy["several"] > 0


def test_the_report_matches_each_video_s_events_with_its_truth(demo_truth, tmp_path):
    from detflow import report

    truth_csv = tmp_path / "truth" / "demo_00.csv"
    truth_csv.parent.mkdir()
    truth_csv.write_text("frame_index,class,xmin,ymin,xmax,ymax\n" + "".join(
        f"{frame},{name},{','.join(map(str, box))}\n" for frame, rows in sorted(demo_truth.items())
        for name, *box in rows))
    events = video_events(noisy_detections(demo_truth, miss=0, flip=0, jitter=0), SETTINGS)
    write_events(events, json_path=tmp_path / "demo_00.events.json", about={"event_settings": vars(SETTINGS)})
    match = report.truth_match([tmp_path / "demo_00.events.json"], [truth_csv])
    assert match["exactly_one_share"] == 1.0 and match["unmatched_events"] == 0
    assert report.truth_match_line(match).startswith(f"{match['appearances']} of {match['appearances']} true gesture "
                                                     "appearances (100.0%) became exactly one event")
    with pytest.raises(report.InputError, match="no truth file of video demo_00"):
        report.truth_match([tmp_path / "demo_00.events.json"], [tmp_path / "other.csv"])

"""Names that become file names (detflow.lib.names): one budget, computed in one place, leaves room for
every ending any stage adds to a video id, so that a long name of any script fits the file system."""
import re

import pytest

from detflow.frames import frame_file_name
from detflow.lib.data.videos import frame_id, video_id
from detflow.lib.files import partial_path
from detflow.lib.names import ENDINGS, LONGEST_ENDING_BYTES, MAX_NAME_BYTES, NAME_MAX_BYTES
from helpers.workflow import REPO

LONG_NAMES = ["é" * 125 + ".mp4", "Ünterwasser " * 19 + "Ende.mp4", "a" * 300 + "_000123.mp4", "日本語" * 40 + ".mov",
              "x" * 240 + ".mkv", "𝄞" * 70 + ".avi"]


def rule_endings():
    """What each rule's output, log and benchmark adds after ``{video}``."""
    text = "\n".join(path.read_text() for path in (REPO / "rules").glob("*.smk"))
    return set(re.findall(r"\{video\}([^\"'/{}]*)[\"']", text))


def test_every_rule_ending_is_within_the_budget():
    endings = rule_endings() - {""}  # "" is a video's frame folder, named by the id alone
    assert {".mp4", ".csv", ".json", ".events.csv", ".events.json", ".log", ".tsv"} <= endings
    for ending in endings:
        assert ending in ENDINGS and len(partial_path(f"x{ending}").name.encode()) - 1 <= LONGEST_ENDING_BYTES


@pytest.mark.parametrize("name", LONG_NAMES)
def test_every_name_derived_from_a_long_video_name_fits(name):
    identifier = video_id(name)
    assert len(identifier.encode()) <= MAX_NAME_BYTES
    frame = frame_file_name(identifier, 123456789)
    derived = [frame, f"{frame[:-4]}.xml", f"{frame[:-4]}.jpeg", *(f"{identifier}{ending}" for ending in ENDINGS)]
    for file_name in derived:
        assert len(partial_path(file_name).name.encode()) <= NAME_MAX_BYTES, file_name
    # The id of a frame file, or of its annotation, is its name: it leads back to the video.
    assert frame_id(frame) == frame[:-4] and frame_id(f"{frame[:-4]}.xml") == frame[:-4]


def test_a_name_within_the_budget_is_kept_and_a_longer_one_gets_a_hash_of_the_whole():
    assert video_id("my clip (2).mp4") == "my_clip_2"
    fits = "b" * MAX_NAME_BYTES
    assert video_id(f"{fits}.mp4") == fits
    first, second = video_id(f"{fits}1.mp4"), video_id(f"{fits}2.mp4")
    assert first != second and len(first.encode()) == len(second.encode()) == MAX_NAME_BYTES

"""The lists of frames that stages hand on as CSV files: a video's frame manifest
(every frame the extraction looked at, and whether it was kept) and a video's
selection (the frames chosen for labelling).

The frames stage writes manifests, the labelling stage writes selections;
every stage that reads them reads them here.
"""
import csv
from pathlib import Path

from detflow.lib.cli import InputError
from detflow.lib.data.videos import frame_id

# timestamp_from: "stream", or "index at <fps> fps" for frames without a usable timestamp; source: the video's
# file name (its id may be shortened).
MANIFEST_COLUMNS = ("frame_index", "timestamp_s", "file", "kept", "reason", "timestamp_from", "source")
SELECTION_COLUMNS = ("frame_index", "timestamp_s", "file")


def read_kept_frames(manifest):
    """Rows of a frame manifest whose frame was kept: [(frame_index, timestamp_s, file)]."""
    try:
        with open(manifest, newline="") as handle:
            rows = list(csv.DictReader(handle))
        return [(int(row["frame_index"]), float(row["timestamp_s"]), row["file"])
                for row in rows if row["kept"] == "true"]
    except (KeyError, ValueError) as error:
        raise InputError(manifest, f"not a frame manifest ({error})") from None


def read_selection(path):
    """Frame files chosen for labelling in one video's selection CSV: [(frame_index, file)]."""
    try:
        with open(path, newline="") as handle:
            return [(int(row["frame_index"]), row["file"]) for row in csv.DictReader(handle)]
    except (KeyError, ValueError) as error:
        raise InputError(path, f"not a frame selection ({error})") from None


def chosen_frames(selections, frame_dirs):
    """[(image id, video, frame path)] of the frames chosen for labelling, video by video."""
    if len(selections) != len(frame_dirs):
        raise InputError(selections[0] if selections else "--selections", "give one frame folder per selection")
    frames = []
    for selection, frame_dir in zip(map(Path, selections), map(Path, frame_dirs)):
        if selection.stem != frame_dir.name:
            raise InputError(selection, f"does not belong to frame folder {frame_dir}")
        frames.extend((frame_id(file), selection.stem, frame_dir / file) for _, file in read_selection(selection))
    return frames

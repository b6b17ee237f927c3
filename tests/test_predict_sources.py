"""New footage: the videos of predict.new_videos_dir annotated by the workflow (a real job with the tests'
tiny model), never trained on (its dry run), and the folders refused at start-up."""
import json
import re
import shutil

import pytest

from helpers.media import decoded_frames, write_video
from helpers.workflow import TINY_DEMO

NEW_OUTPUTS = (".mp4", ".csv", ".json", ".events.csv", ".events.json")


@pytest.fixture
def new_footage(tmp_path):
    """A folder of two new recordings (and a file that is no video)."""
    folder = tmp_path / "new footage"
    write_video(folder / "hall way.mp4", 8)
    write_video(folder / "door.avi", 6)
    (folder / "notes.txt").write_text("recorded on Monday\n")
    return folder


def planned_jobs(plan):
    """{rule: [the text of each of its jobs]} of a dry run's output."""
    jobs = {}
    for rule, text in re.findall(r"^(?:local)?rule (\w+):\n(.*?)(?=^\S|\Z)", plan, re.MULTILINE | re.DOTALL):
        jobs.setdefault(rule, []).append(text)
    return jobs


def test_new_footage_is_planned_for_prediction_only(workflow_copy, new_footage):
    workflow_copy.set_config(demo=TINY_DEMO, predict={"new_videos_dir": str(new_footage)})
    jobs = planned_jobs(workflow_copy.snakemake("-n").stdout)
    assert sorted(re.search(r"wildcards: new_video=(\S+)", text)[1] for text in jobs["predict_new_video"]) == [
        "door", "hall_way"]
    assert len(jobs["predict_video"]) == len(jobs["extract_frames"]) == TINY_DEMO["videos"]
    for rule, texts in jobs.items():  # no frames, labelling, dataset, training or report job reads them
        if rule not in ("predict_new_video", "all"):
            assert not any(str(new_footage) in text or "hall_way" in text or "door" in text for text in texts), rule
    assert "predict_new_video" not in workflow_copy.dry_run_jobs("results/model/inference.h5")


def test_new_footage_gets_annotated_video_detections_and_events(workflow_copy, new_footage, model_path):
    """The job itself, with a ready model in place of the trained one (only this rule may run)."""
    workflow_copy.set_config(demo=TINY_DEMO, predict={"new_videos_dir": str(new_footage)})
    root = workflow_copy.root
    (root / "results" / "model").mkdir(parents=True)
    shutil.copy(model_path, root / "results" / "model" / "inference.h5")
    workflow_copy.snakemake("--allowed-rules", "predict_new_video", "--", "results/predictions/new/door.mp4")
    out = root / "results" / "predictions" / "new"
    assert sorted(path.name for path in out.iterdir()) == [f"door{ending}" for ending in sorted(NEW_OUTPUTS)]
    content = json.loads((out / "door.json").read_text())
    assert content["video"] == str(new_footage / "door.avi") and content["frames_predicted"] == 6
    assert len(decoded_frames(out / "door.mp4")) == 6
    assert (root / "logs" / "predict_new_video" / "door.log").exists()
    assert not (root / "results" / "frames").exists()


@pytest.mark.parametrize("case", ["missing", "empty", "videos.dir", "a file"])
def test_a_new_footage_folder_that_cannot_be_is_refused_at_start_up(workflow_copy, tmp_path, case):
    videos, labels = tmp_path / "videos", tmp_path / "labels"
    write_video(videos / "take.mp4", 4)
    labels.mkdir()
    folder = {"missing": tmp_path / "nowhere", "empty": tmp_path / "empty", "videos.dir": videos / ".." / "videos",
              "a file": videos / "take.mp4"}[case]
    if case == "empty":
        folder.mkdir()
        (folder / "notes.txt").write_text("no videos yet\n")
    workflow_copy.set_config(videos={"dir": str(videos)}, annotations={"dir": str(labels)},
                             predict={"new_videos_dir": str(folder)})
    result = workflow_copy.snakemake("-n", check=False)
    reason = {"missing": "folder not found", "empty": "no videos in this folder (looked for .avi, .mkv, .mov, .mp4)",
              "videos.dir": f"is the folder of the training videos (videos.dir: {videos}); new footage is never "
                            "trained on, so it needs a folder of its own",
              "a file": "is a file, not a folder"}[case]
    assert result.returncode != 0 and "Traceback" not in result.stdout
    assert f"invalid configuration: config: predict.new_videos_dir: {folder}: {reason}" in result.stdout
    assert not (workflow_copy.root / "results").exists()

"""The workflow's spine under Snakemake: the demo and the video stages run with
a log per job and benchmarks, lint clean; only stale jobs rerun (shown with
dry runs); bad videos fail alone under --keep-going, named with the reason,
and no input file changes."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers.media import file_hashes, not_a_video, truncated_copy, write_video, zero_frame_video
from helpers.workflow import REPO, TINY_DEMO, WorkflowCopy

FRAMES_PER_VIDEO = 4
TRICKY_NAME = """my clip; $HOME 'single' "double" été.mp4"""
TRICKY_ID = "my_clip_HOME_single_double_été"


class RestoredWorkflow(WorkflowCopy):
    """A workflow copy that has run, put back as it was right after the run: outputs, logs,
    modification times and Snakemake's records. It goes back to the same folder because
    Snakemake records the stages' code by absolute path."""

    def __init__(self, folder, pristine):
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(pristine, folder, symlinks=True)  # keeps modification times
        self.root = Path(folder) / "project"
        self.config = yaml.safe_load((self.root / "config.yaml").read_text())


def own_videos(workflow, videos_dir):
    """Point the copy at a folder of videos (and an empty labelImg folder)."""
    annotations = workflow.root.parent / "labels"
    annotations.mkdir(exist_ok=True)
    workflow.set_config(videos={"dir": str(videos_dir)}, annotations={"dir": str(annotations)},
                        labelling={"frames_per_video": FRAMES_PER_VIDEO})


def keep_pristine(workflow):
    """Save the folder holding ``workflow`` (and its videos) as it is now; return (folder, saved copy)."""
    folder = workflow.root.parent
    shutil.copytree(folder, folder.parent / "pristine", symlinks=True)
    return folder, folder.parent / "pristine"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The tiny demo run up to the labelling folder: (folder, saved copy, Snakemake's output)."""
    workflow = WorkflowCopy(tmp_path_factory.mktemp("demo") / "run" / "project")
    workflow.set_config(demo=TINY_DEMO, labelling={"frames_per_video": FRAMES_PER_VIDEO})
    output = workflow.snakemake("frames_to_label").stdout
    return (*keep_pristine(workflow), output)


@pytest.fixture
def demo(demo_run):
    """The finished demo run, as it was right after the run."""
    return RestoredWorkflow(*demo_run[:2])


@pytest.fixture(scope="module")
def videos_run(tmp_path_factory):
    """Two videos of a person's folder run up to the labelling folder: (folder, saved copy)."""
    folder = tmp_path_factory.mktemp("videos") / "run"
    for name in ("first.avi", "second.mp4"):
        write_video(folder / "videos" / name, 16)
    workflow = WorkflowCopy(folder / "project")
    own_videos(workflow, folder / "videos")
    workflow.snakemake("frames_to_label")
    return keep_pristine(workflow)


@pytest.fixture
def videos(videos_run):
    """The finished run on a person's videos, as it was right after the run."""
    return RestoredWorkflow(*videos_run)


@pytest.fixture
def workflow_root(tmp_path):
    return tmp_path / "project"


def test_lint_reports_nothing(demo):
    result = demo.snakemake("--lint", check=False)  # exits 1 when any file has lints
    assert result.returncode == 0, result.stdout
    assert "Lints for" not in result.stdout
    assert "Congratulations, your workflow is in a good condition!" in result.stdout


def test_snakefmt_leaves_every_rule_file_as_it_is():
    result = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "Snakefile", "rules"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_demo_runs_to_the_labelling_folder(demo, demo_run):
    root, ids, output = demo.root, ["demo_00", "demo_01", "demo_02"], demo_run[2]
    for video in ids:
        assert (root / "results/demo/videos" / f"{video}.mp4").stat().st_size > 0
        assert (root / "results/demo/truth" / f"{video}.csv").read_text().startswith("frame_index,class,")
        assert len(list((root / "results/frames" / video).glob(f"{video}_*.jpg"))) == 10  # 20 frames, every 2nd
        assert (root / "results/frames" / f"{video}.csv").is_file()
        for rule in ("demo_video", "extract_frames", "select_frames"):
            assert (root / "logs" / rule / f"{video}.log").is_file()
        for rule in ("demo_video", "extract_frames"):
            assert (root / "benchmarks" / rule / f"{video}.tsv").read_text().startswith("s\t")
    images = sorted(path.stem for path in (root / "results/labelling/images").glob("*.jpg"))
    labels = sorted(path.stem for path in (root / "results/demo/annotations").glob("*.xml"))
    assert len(images) == 3 * FRAMES_PER_VIDEO and labels == images
    assert (root / "results/labelling/classes.txt").read_text() == "grab\ndrop\n"
    command = (root / "results/labelling/labelimg.txt").read_text().strip()
    # Relative to the project folder: the command still works in a moved or copied project.
    assert command == ("detflow label --images results/labelling/images --classes results/labelling/classes.txt "
                       "--save-dir results/demo/annotations")
    assert command in output  # printed for the person who runs `snakemake frames_to_label`
    assert (root / "logs/labelling_folder.log").is_file() and (root / "logs/demo_labeller.log").is_file()


def test_nothing_reruns_after_a_run(demo):
    assert demo.dry_run_jobs("frames_to_label") == {}


@pytest.mark.parametrize("old, new", [("labelling", "frames_to_label"), ("prelabel", "drafts")])
def test_an_old_target_name_still_runs_and_says_the_new_one(demo, old, new):
    output = demo.snakemake("-n", old, check=False).stdout
    assert f"note: the target {old} is now called {new} (snakemake {new})" in output


ALL_VIDEO_JOBS = {"extract_frames": 3, "select_frames": 3, "labelling_folder": 1, "demo_labeller": 1, "frames_to_label": 1}


@pytest.mark.parametrize("section, change, expected", [
    ("labelling", {"frames_per_video": 3},
     {"select_frames": 3, "labelling_folder": 1, "demo_labeller": 1, "frames_to_label": 1}),
    ("frames", {"jpeg_quality": 80}, ALL_VIDEO_JOBS),
    ("demo", {"seed": 6}, {"demo_video": 3, **ALL_VIDEO_JOBS}),
])
def test_changed_parameters_rerun_their_stage_and_what_follows(demo, section, change, expected):
    demo.set_config(**{section: change})
    assert demo.dry_run_jobs("frames_to_label") == expected


@pytest.mark.parametrize("module, expected", [
    ("frames_to_label", {"select_frames": 3, "labelling_folder": 1, "demo_labeller": 1, "frames_to_label": 1}),
    ("frames", ALL_VIDEO_JOBS),
    ("demo", {"demo_video": 3, **ALL_VIDEO_JOBS}),
    # library modules: the jobs whose stage imports them (directly or not), and what follows
    ("lib/data/pascal_voc", {"demo_labeller": 1, "frames_to_label": 1}),
    ("lib/data/videos", ALL_VIDEO_JOBS),
    ("lib/data/gesture_truth", {"demo_video": 3, **ALL_VIDEO_JOBS}),
    ("lib/cli", {"demo_video": 3, **ALL_VIDEO_JOBS}),
])
def test_changed_code_reruns_its_stage_and_what_follows(demo, module, expected):
    source = demo.root / "workflow" / "detflow" / f"{module}.py"
    source.write_text(source.read_text() + "\n# edited\n")
    assert demo.dry_run_jobs("frames_to_label") == expected


def test_adding_demo_videos_makes_only_the_new_ones(demo):
    demo.set_config(demo={"videos": 4})
    assert demo.dry_run_jobs("frames_to_label") == {
        "demo_video": 1, "extract_frames": 1, "select_frames": 1, "labelling_folder": 1, "demo_labeller": 1,
        "frames_to_label": 1}


def test_adding_a_video_extracts_only_that_video(videos):
    write_video(Path(videos.config["videos"]["dir"]) / "third.mkv", 16)
    assert videos.dry_run_jobs("frames_to_label") == {
        "extract_frames": 1, "select_frames": 1, "labelling_folder": 1, "frames_to_label": 1}
    old_frames = {path: path.stat().st_mtime_ns for path in (videos.root / "results/frames/first").glob("*.jpg")}
    videos.snakemake("frames_to_label")
    assert len(list((videos.root / "results/frames/third").glob("*.jpg"))) == 8
    assert {path: path.stat().st_mtime_ns for path in (videos.root / "results/frames/first").glob("*.jpg")} == old_frames
    assert len(list((videos.root / "results/labelling/images").glob("*.jpg"))) == 3 * FRAMES_PER_VIDEO


def test_touching_one_video_reruns_only_its_stages(videos):
    video = Path(videos.config["videos"]["dir"]) / "second.mp4"
    only_second = {"extract_frames": 1, "select_frames": 1, "labelling_folder": 1, "frames_to_label": 1}
    video.touch()
    # Snakemake checksums inputs under 1 MB and sees this one unchanged; real videos are larger.
    assert videos.dry_run_jobs("frames_to_label") == {}
    assert videos.dry_run_jobs("--max-checksum-file-size", "0", "frames_to_label") == only_second
    write_video(video, 20)  # a new take under the same name
    assert videos.dry_run_jobs("frames_to_label") == only_second
    output = videos.snakemake("frames_to_label").stdout
    assert "logs/extract_frames/second.log" in output and "logs/extract_frames/first.log" not in output
    assert len(list((videos.root / "results/frames/second").glob("*.jpg"))) == 10


def test_labelimg_command_saves_into_the_persons_folder(videos):
    command = (videos.root / "results/labelling/labelimg.txt").read_text().split()
    assert command[:2] == ["detflow", "label"] and command[-2] == "--save-dir"
    assert Path(command[-1]) == Path(videos.config["annotations"]["dir"]).resolve()


def test_bad_videos_fail_alone_with_the_file_and_reason(workflow_root):
    folder = workflow_root.parent / "videos"
    write_video(folder / "good.avi", 12)
    write_video(folder / TRICKY_NAME, 12)
    truncated_copy(write_video(folder.parent / "whole.avi", 30), folder / "cut.avi")
    zero_frame_video(folder / "nothing.avi")
    not_a_video(folder / "notes.mkv")
    write_video(folder / "take.avi", 6)
    write_video(folder / "take.mp4", 6)
    before = file_hashes(folder)
    workflow = WorkflowCopy(workflow_root)
    own_videos(workflow, folder)
    result = workflow.snakemake("--keep-going", "frames_to_label", check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stdout
    results = workflow.root / "results"
    for video in ("good", TRICKY_ID):
        assert len(list((results / "frames" / video).glob(f"{video}_*.jpg"))) == 6
        assert (results / "labelling/selected" / f"{video}.csv").is_file()
    expected_errors = {
        "cut": f"error: {folder / 'cut.avi'}: decoding stopped at frame",
        "nothing": f"error: {folder / 'nothing.avi'}: no frame could be decoded",
        "notes": f"error: {folder / 'notes.mkv'}: not a video OpenCV can read",
        "take": f"error: {folder / 'take.avi'}: {folder / 'take.mp4'} has the same name apart from its extension",
    }
    for video, error in expected_errors.items():
        log = (workflow.root / "logs/extract_frames" / f"{video}.log").read_text()
        assert error in log
        assert "Traceback" not in log
        assert not (results / "frames" / video).exists()
        assert error in result.stdout  # the failed job's log is shown
    assert not (results / "labelling/images").exists()  # needs every video
    assert file_hashes(folder) == before


def test_empty_video_folder_stops_at_start_up(workflow_root):
    (workflow_root.parent / "videos").mkdir(parents=True)
    workflow = WorkflowCopy(workflow_root)
    own_videos(workflow, workflow_root.parent / "videos")
    result = workflow.snakemake("-n", "frames_to_label", check=False)
    assert result.returncode != 0
    assert f"{workflow_root.parent / 'videos'}: no videos in this folder" in result.stdout
    assert "Traceback" not in result.stdout


@pytest.mark.parametrize("section, change, key", [
    ("frames", {"jpeg_quality": 101}, "frames.jpeg_quality"),
    ("frames", {"every_nth": 0}, "frames.every_nth"),
    ("labelling", {"frames_per_video": 0}, "labelling.frames_per_video"),
    ("demo", {"videos": 1}, "demo.videos"),
    ("demo", {"colour": "red"}, "demo"),
])
def test_bad_settings_are_named_at_start_up(workflow_root, section, change, key):
    workflow = WorkflowCopy(workflow_root)
    workflow.set_config(**{section: change})
    result = workflow.snakemake("-n", "frames_to_label", check=False)
    assert result.returncode != 0
    assert f"invalid configuration: config: {key}:" in result.stdout

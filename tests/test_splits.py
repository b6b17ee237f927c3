"""Splits: grouped by video, deterministic, stable as data grows, reported per
class, and readable by keras-retinanet's own PascalVocGenerator."""
import csv
import json
import os
import subprocess
import sys
import warnings

import pytest

from detflow.dataset import build_dataset
from detflow.lib.cli import InputError
from detflow.lib.data.split_rule import unit_hash
from detflow.splits import LIST_FILES, imbalance, make_splits, split_of
from helpers.config import DATASET, config_options
from helpers.voc import extract_plums, labelled_videos

FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}
VIDEOS = [f"session {n:02d}" for n in range(12)]  # names with spaces: ids are made safe by the frame stage
SIZE = (96, 72)  # width, height of the labelled frames


def video_ids(names):
    return [name.replace(" ", "_") for name in names]


def build(root, videos, classes=("grab", "drop"), frames=3):
    annotations, frame_dirs = labelled_videos(root, video_ids(videos), frames=frames, classes=classes, size=SIZE)
    build_dataset(annotations, frame_dirs, root / "voc", classes=list(classes), on_error="stop",
                  classes_from=DATASET["classes_from"], boxes_outside=DATASET["boxes_outside"])
    return root / "voc"


def split_dataset(voc, seed=3, fractions=FRACTIONS, group_by="video"):
    return make_splits(voc / "images.csv", voc / "classes.json", voc, seed=seed, fractions=fractions, group_by=group_by)


def read_lists(voc):
    return {name: (voc / "ImageSets" / "Main" / f"{name}.txt").read_text().splitlines() for name in LIST_FILES}


def test_hash_is_fixed_across_processes_and_machines():
    # Pinned values: a change here would silently reshuffle every user's split.
    assert unit_hash(3, "demo_00") == 0.777976548137467
    assert unit_hash(0, "vidéo 1") == 0.4611582879379775
    code = "from detflow.splits import split_of; print([split_of(f'v{i}', 5, {'train': .6, 'val': .2, 'test': .2}) for i in range(40)])"
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": salt}).stdout for salt in ("1", "2", "random")}
    assert len(outputs) == 1
    assert outputs.pop().strip() == str([split_of(f"v{i}", 5, FRACTIONS) for i in range(40)])


def test_lists_are_grouped_disjoint_and_trainval_is_train_plus_val(tmp_path):
    voc = build(tmp_path, VIDEOS)
    summary = split_dataset(voc)
    lists = read_lists(voc)
    rows = list(csv.DictReader(open(voc / "images.csv")))
    all_ids = sorted(row["image_id"] for row in rows)
    assert sorted(lists["train"] + lists["val"] + lists["test"]) == all_ids
    assert not set(lists["train"]) & set(lists["val"]) and not set(lists["test"]) & set(lists["trainval"])
    assert lists["trainval"] == sorted(lists["train"] + lists["val"])
    for name in LIST_FILES:
        assert lists[name] == sorted(lists[name]) and all(" " not in i and "." not in i for i in lists[name])
    split_by_image = {image: name for name in ("train", "val", "test") for image in lists[name]}
    for row in rows:  # every frame of a video sits in its video's split
        assert split_by_image[row["image_id"]] == summary["groups"][row["group"]]
    assert {summary["groups"][v] for v in video_ids(VIDEOS)} == {"train", "val", "test"}
    for name in ("train", "val", "test"):
        assert summary["splits"][name]["images"] == len(lists[name])
        assert summary["splits"][name]["groups"] == sum(1 for s in summary["groups"].values() if s == name)


def test_same_seed_same_lists_other_seed_other_lists(tmp_path):
    voc = build(tmp_path, VIDEOS)
    split_dataset(voc, seed=7)
    first = read_lists(voc)
    split_dataset(voc, seed=7)
    assert read_lists(voc) == first
    split_dataset(voc, seed=8)
    assert read_lists(voc) != first


def test_adding_videos_never_moves_an_existing_one(tmp_path):
    before = split_dataset(build(tmp_path / "before", VIDEOS[:6]), seed=4)["groups"]
    after = split_dataset(build(tmp_path / "after", VIDEOS), seed=4)["groups"]
    assert {video: after[video] for video in before} == before
    for seed in range(20):  # and at scale, for many seeds
        few = {f"clip{n}": split_of(f"clip{n}", seed, FRACTIONS) for n in range(50)}
        assert all(split_of(name, seed, FRACTIONS) == split for name, split in few.items())


def test_growing_a_fraction_only_pulls_groups_in():
    names = [f"clip{n}" for n in range(2000)]
    wider = {"train": 0.7, "val": 0.15, "test": 0.15}
    assert all(split_of(name, 1, wider) == "train" for name in names if split_of(name, 1, FRACTIONS) == "train")


def test_fractions_hold_for_many_groups():
    counts = {"train": 0, "val": 0, "test": 0}
    for n in range(5000):
        counts[split_of(f"frame_{n:06d}", 3, FRACTIONS)] += 1
    for name, fraction in FRACTIONS.items():
        assert abs(counts[name] / 5000 - fraction) < 0.025


def test_image_grouping_splits_frames_of_one_video(tmp_path):
    voc = build(tmp_path, VIDEOS[:2], frames=20)
    summary = split_dataset(voc, group_by="image")
    assert len(summary["groups"]) == 40
    lists = read_lists(voc)
    assert {name for name in ("train", "val", "test") if any(i.startswith("session_00") for i in lists[name])} == {"train", "val", "test"}


def test_report_counts_classes_and_warns_when_a_class_is_absent(tmp_path):
    voc = build(tmp_path, VIDEOS[:5], classes=("grab", "drop", "wave"))
    summary = split_dataset(voc, seed=2)  # 1 video in train: it shows two of the three classes
    lists = read_lists(voc)
    rows = {row["image_id"]: row for row in csv.DictReader(open(voc / "images.csv"))}
    for name in ("train", "val", "test"):
        for class_name in ("grab", "drop", "wave"):
            boxes = sum(int(rows[i][f"boxes_{class_name}"]) for i in lists[name])
            assert summary["splits"][name]["boxes"][class_name] == boxes
            if summary["splits"][name]["images"] and boxes == 0:
                assert f"class {class_name!r} is absent from {name}" in " ".join(summary["warnings"])
    assert summary["warnings"], "5 videos and 3 classes cannot fill every split with every class"
    text = (voc / "splits.txt").read_text()
    assert "split\tvideos\timages\tnegatives\tboxes grab\tboxes drop\tboxes wave" in text
    assert all(f"Warning: {warning}" in text for warning in summary["warnings"])
    assert json.loads((voc / "splits.json").read_text()) == summary


def test_suggested_seeds_really_balance_better(tmp_path):
    voc = build(tmp_path, VIDEOS[:6], classes=("grab", "drop", "wave"))
    summary = split_dataset(voc, seed=2)
    assert summary["better_seeds"], "seed 2 puts 1 of 6 videos in train; better seeds exist"
    best = summary["better_seeds"][0]
    assert best["imbalance"] < summary["imbalance"]
    again = split_dataset(voc, seed=best["seed"])
    assert again["imbalance"] == pytest.approx(best["imbalance"], abs=1e-3)
    assert len(again["warnings"]) < len(summary["warnings"])


def test_imbalance_is_zero_for_a_perfect_split():
    from collections import Counter
    groups = {"a": (3, Counter(grab=3)), "b": (1, Counter(grab=1)), "c": (1, Counter(grab=1))}
    perfect = {"a": "train", "b": "val", "c": "test"}
    assert imbalance(groups, perfect, FRACTIONS, ["grab"]) == pytest.approx(0)
    assert imbalance(groups, {"a": "train", "b": "train", "c": "test"}, FRACTIONS, ["grab"]) > 1


def test_an_empty_train_or_val_split_is_an_error_with_a_way_out(tmp_path):
    voc = build(tmp_path, VIDEOS[:6])
    with pytest.raises(InputError) as raised:
        split_dataset(voc, seed=3)
    assert raised.value.where == "split"
    assert raised.value.reason.startswith("val would be empty with 6 videos and seed 3: training needs both")
    assert "seeds that fill the splits better: 4," in raised.value.reason
    assert raised.value.reason.endswith("or add videos or set split.group_by: image")
    assert split_dataset(voc, seed=4)["splits"]["val"]["images"] > 0
    one_video = build(tmp_path / "one", VIDEOS[:1])
    with pytest.raises(InputError, match="would be empty with 1 videos"):
        split_dataset(one_video)
    assert split_dataset(one_video, group_by="image")["splits"]["val"]["images"] > 0


@pytest.mark.parametrize("fractions, message", [
    ({"train": 0.6, "val": 0.3, "test": 0.2}, "sum to 1.1"),
    ({"train": 0.8, "val": 0.0, "test": 0.2}, "split.val"),
    ({"train": 1.2, "val": 0.2, "test": -0.4}, "split.train"),
])
def test_bad_fractions(tmp_path, fractions, message):
    voc = build(tmp_path, VIDEOS[:3])
    with pytest.raises(InputError, match=message):
        split_dataset(voc, fractions=fractions)


def test_cli_writes_the_lists(tmp_path):
    voc = build(tmp_path, VIDEOS[:4])
    result = subprocess.run([sys.executable, "-m", "detflow.splits", str(voc / "images.csv"), str(voc / "classes.json"),
                             str(voc), "--seed", "4", "--train", "0.5", "--val", "0.25", "--test", "0.25",
                             "--group-by", "video"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads((voc / "splits.json").read_text())["fractions"] == {"train": 0.5, "val": 0.25, "test": 0.25}
    bad = subprocess.run([sys.executable, "-m", "detflow.splits", str(voc / "missing.csv"), str(voc / "classes.json"),
                          str(voc), *config_options("split")], capture_output=True, text=True)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr


def load_every_split(voc):
    """Each split through keras-retinanet's PascalVocGenerator: annotations, images and one batch of targets."""
    from keras_retinanet.preprocessing.pascal_voc import PascalVocGenerator

    classes = json.loads((voc / "classes.json").read_text())
    rows = {row["image_id"]: row for row in csv.DictReader(open(voc / "images.csv"))}
    loaded = {}
    for name in LIST_FILES:
        generator = PascalVocGenerator(str(voc), name, classes=classes, batch_size=2, shuffle_groups=False,
                                       image_min_side=64, image_max_side=128)
        ids = (voc / "ImageSets" / "Main" / f"{name}.txt").read_text().split()
        assert generator.size() == len(ids)
        for index, image_id in enumerate(ids):
            annotations = generator.load_annotations(index)
            assert len(annotations["labels"]) == int(rows[image_id]["boxes"])
            for class_name, label in classes.items():
                assert (annotations["labels"] == label).sum() == int(rows[image_id][f"boxes_{class_name}"])
            image = generator.load_image(index)
            assert image.shape[:2] == (int(rows[image_id]["height"]), int(rows[image_id]["width"]))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            batches = [generator[batch] for batch in range(len(generator))]
        assert not [w for w in caught if "invalid boxes" in str(w.message)], "keras-retinanet dropped boxes"
        assert len(batches) == -(-len(ids) // 2)  # the library fills the last batch from the start
        assert all(inputs.shape[0] == 2 and len(targets) == 2 for inputs, targets in batches)
        loaded[name] = len(ids)
    return loaded


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_keras_retinanet_loads_every_split(tmp_path):
    voc = build(tmp_path / "videos", VIDEOS[:8])
    split_dataset(voc, seed=1)
    loaded = load_every_split(voc)
    assert loaded["trainval"] == loaded["train"] + loaded["val"] and loaded["train"] > 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_plums_split_loads_in_keras_retinanet(tmp_path, plums):
    tree = extract_plums(plums, tmp_path / "plums")
    plums_voc = tmp_path / "plums_voc"
    build_dataset(tree / "Annotations", [tree / "JPEGImages"], plums_voc, classes=["redPlum", "greenPlum"],
                  on_error="stop", classes_from=DATASET["classes_from"], boxes_outside=DATASET["boxes_outside"])
    summary = make_splits(plums_voc / "images.csv", plums_voc / "classes.json", plums_voc, seed=129, fractions=FRACTIONS,
                          group_by="image")
    assert sum(summary["splits"][name]["images"] for name in ("train", "val", "test")) == 15
    assert load_every_split(plums_voc)["trainval"] + summary["splits"]["test"]["images"] == 15

"""Training stage: real keras-retinanet training on a small synthetic VOC set
(helpers.voc.make_voc), kept tiny: a MobileNet 128/0.25 backbone with 16-wide
FPN and heads, 96-128 px images, a few steps per epoch (helpers.models). The
workflow from the demo's videos to the inference model:
tests/test_workflow_end_to_end.py."""
import csv
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from detflow import train as training
from detflow.lib.cli import InputError
from detflow.lib.training.checkpoints import Progress
from detflow.lib.training.settings import Settings
from helpers.models import SNAPSHOT, TINY_SETTINGS, TINY_TRAIN, logged_scalars, settings_options
from helpers.voc import CLASSES, make_voc


def run_training(voc_dir, work, classes=tuple(CLASSES), **overrides):
    settings = Settings(**{**TINY_SETTINGS, **TINY_TRAIN, **overrides})
    return training.train(voc_dir, work / "metrics.csv", work / "training.json", work / "snapshots",
                          work / "tensorboard", settings, classes=list(classes), device="CPU (test)")


def metrics_rows(work):
    with open(work / "metrics.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def folder_digest(folder):
    """Names and contents of every file in ``folder``: proves nothing in it changed."""
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(Path(folder).iterdir())}


def best_epoch(values, larger_is_better):
    """The expected choice, written independently of the code under test: float32 values, ties earliest."""
    as_stored = [float(np.float32(value)) for value in values]
    target = max(as_stored) if larger_is_better else min(as_stored)
    return as_stored.index(target) + 1


@pytest.fixture(scope="module")
def trained(voc, tmp_path_factory):
    """Five epochs, keep_best 1, with the number of snapshot files watched while training goes."""
    work = tmp_path_factory.mktemp("trained")
    most_snapshots = [0]
    done = threading.Event()

    def watch():
        while not done.is_set():
            if (work / "snapshots").is_dir():
                most_snapshots[0] = max(most_snapshots[0], len(list((work / "snapshots").glob("*.h5"))))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        summary = run_training(voc, work, epochs=5)
    finally:
        done.set()
        watcher.join()
    return work, summary, most_snapshots[0]


def copy_of(work, tmp_path):
    copy = tmp_path / "work"
    shutil.copytree(work, copy)
    return copy


def test_tensorboard_logs_losses_map_and_class_ap_per_epoch(trained):
    work, summary, _ = trained
    scalars = logged_scalars(work / "tensorboard" / "train")
    expected_tags = {"epoch_loss", "epoch_regression_loss", "epoch_classification_loss", "epoch_mAP",
                     "epoch_mAP_50_95", "epoch_AP_grab", "epoch_AP_drop"}
    assert expected_tags <= set(scalars)
    for tag in expected_tags:
        assert sorted(scalars[tag]) == [0, 1, 2, 3, 4], tag  # TensorBoard steps count epochs from 0
    # The logged values are the epoch's metrics, as the CSV has them.
    for row in metrics_rows(work):
        step = int(row["step"])
        for name in ("loss", "regression_loss", "classification_loss", "mAP", "mAP_50_95", "AP_grab", "AP_drop"):
            assert scalars[f"epoch_{name}"][step] == pytest.approx(float(row[name]), rel=1e-6)
        # mAP is the mean of the classes' AP (both classes have validation boxes).
        assert float(row["mAP"]) == pytest.approx((float(row["AP_grab"]) + float(row["AP_drop"])) / 2)
        assert 0 <= float(row["mAP_50_95"]) <= 1
    assert summary["tensorboard_dir"] == str(work / "tensorboard") and summary["tensorboard_run"] == "train"


def test_metrics_csv_has_one_row_per_epoch(trained):
    work, summary, _ = trained
    rows = metrics_rows(work)
    assert list(rows[0]) == ["epoch", "step", "loss", "regression_loss", "classification_loss", "mAP",
                             "mAP_50_95", "AP_grab", "AP_drop", "seconds", "cpu_seconds", "snapshot"]
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3, 4, 5]
    assert [int(row["step"]) for row in rows] == [0, 1, 2, 3, 4]
    for row in rows:
        assert np.isfinite(float(row["loss"])) and 0 <= float(row["mAP"]) <= 1 and float(row["seconds"]) > 0
        assert float(row["cpu_seconds"]) > 0
    assert summary["epochs_completed"] == 5 and summary["stopped"] == "completed"
    assert summary["optimizer_iterations"] == 5 * TINY_TRAIN["steps"]
    assert summary["dataset"]["train"] == {"images": 16, "boxes": {"grab": 12, "drop": 12}}
    assert summary["dataset"]["val"]["images"] == 6
    assert summary["images_per_second"] > 0


def test_snapshots_keep_the_best_by_each_metric_and_the_last(trained):
    work, summary, most_snapshots = trained
    rows = metrics_rows(work)
    kept = {
        5,  # the last
        best_epoch([float(row["mAP"]) for row in rows], larger_is_better=True),
        best_epoch([float(row["loss"]) for row in rows], larger_is_better=False),
    }
    on_disk = {path.name for path in (work / "snapshots").glob("*.h5")}
    assert on_disk == {SNAPSHOT.format(epoch) for epoch in kept}
    assert {int(epoch): name for epoch, name in summary["snapshots"].items()} == {
        epoch: SNAPSHOT.format(epoch) for epoch in kept}
    # The CSV says which snapshot still exists.
    assert {int(row["epoch"]) for row in rows if row["snapshot"]} == kept
    # Pruned while training went: never more than the kept ones plus the one just written.
    assert 0 < most_snapshots <= len(kept) + 1 <= 4
    assert not list((work / "snapshots").glob("*.partial"))


def test_progress_ranks_like_the_selection_stage(tmp_path):
    """Retention uses float32 values and ties to the earliest, exactly as best_snapshot does."""
    progress = Progress(tmp_path, "resnet50", "fingerprint")
    values = [(0.5, 2.0), (0.7, 1.0), (0.7, 1.0 + 1e-12), (0.2, 3.0), (0.1, 4.0)]  # 1 + 1e-12 is 1 in float32
    for step, (mean_ap, loss) in enumerate(values):
        name = progress.snapshot_path(step + 1).name
        (tmp_path / name).write_bytes(b"snapshot")
        progress.records.append({"epoch": step + 1, "step": step, "mAP": mean_ap, "loss": loss, "snapshot": name})
    pruned = progress.prune(keep_best=1)
    # Best mAP: epoch 2 (tie with 3, earliest wins); best loss: epoch 2 (tie in float32); last: epoch 5.
    assert progress.kept_snapshots() == {2: "resnet50_pascal_02.h5", 5: "resnet50_pascal_05.h5"}
    assert sorted(path.name for path in pruned) == ["resnet50_pascal_01.h5", "resnet50_pascal_03.h5",
                                                     "resnet50_pascal_04.h5"]


def test_the_same_seed_trains_the_same_model(trained, voc, tmp_path):
    """Batch order, augmentation and initial weights all follow train.seed, whatever state Python's
    random module is in (keras-retinanet's generator shuffles with it as it is built)."""
    random.seed(os.urandom(16))
    run_training(voc, tmp_path / "again", epochs=5)  # the same epochs: the learning-rate schedule spans them
    again = metrics_rows(tmp_path / "again")
    first = metrics_rows(trained[0])
    for name in ("loss", "regression_loss", "classification_loss", "mAP", "mAP_50_95"):
        assert [row[name] for row in again] == [row[name] for row in first], name


def test_more_epochs_continue_from_the_last_snapshot_with_its_optimizer_state(trained, voc, tmp_path):
    work = copy_of(trained[0], tmp_path)
    before = metrics_rows(work)
    summary = run_training(voc, work, epochs=6)
    assert summary["resumed_from"] == {"epoch": 5, "snapshot": str(work / "snapshots" / SNAPSHOT.format(5)),
                                       "optimizer_iterations": 5 * TINY_TRAIN["steps"]}
    assert summary["optimizer_iterations"] == 6 * TINY_TRAIN["steps"]
    rows = metrics_rows(work)
    assert [row["epoch"] for row in rows] == ["1", "2", "3", "4", "5", "6"]
    assert [row["loss"] for row in rows[:5]] == [row["loss"] for row in before]
    assert sorted(logged_scalars(work / "tensorboard" / "train")["epoch_loss"]) == [0, 1, 2, 3, 4, 5]
    assert (work / "snapshots" / SNAPSHOT.format(6)).is_file()


def test_changed_settings_start_clean_from_the_given_weights(trained, voc, tmp_path, caplog):
    work = copy_of(trained[0], tmp_path)
    weights = trained[0] / "snapshots" / SNAPSHOT.format(5)
    with caplog.at_level("INFO", logger="detflow"):
        summary = run_training(voc, work, epochs=1, learning_rate=5e-4, weights=str(weights))
    assert "starting from scratch: the dataset, classes, settings or code changed" in caplog.text
    assert f"starting weights: {weights} (" in caplog.text
    assert summary["resumed_from"] is None and summary["optimizer_iterations"] == TINY_TRAIN["steps"]
    assert sorted(path.name for path in (work / "snapshots").glob("*.h5")) == [SNAPSHOT.format(1)]
    assert sorted(logged_scalars(work / "tensorboard" / "train")["epoch_loss"]) == [0]
    assert len(metrics_rows(work)) == 1


def test_patience_stops_early_without_better_map(voc, tmp_path):
    work = tmp_path / "work"
    # An untrained detector keeps the same validation mAP: patience 1 stops after epoch 2.
    summary = run_training(voc, work, epochs=4, patience=1, steps=1)
    rows = metrics_rows(work)
    assert len(rows) == summary["epochs_completed"] < 4
    assert summary["stopped"] == "early_stopping"
    best = best_epoch([float(row["mAP"]) for row in rows], larger_is_better=True)
    assert len(rows) == best + 1


# ---------------------------------------------------------------- bad input


def broken_voc(voc, tmp_path):
    copy = tmp_path / "voc"
    shutil.copytree(voc, copy)
    return copy


def test_empty_train_split_is_refused_with_snapshots_intact(trained, voc, tmp_path):
    work = copy_of(trained[0], tmp_path)
    before = folder_digest(work / "snapshots")
    data = broken_voc(voc, tmp_path)
    (data / "ImageSets" / "Main" / "train.txt").write_text("")
    with pytest.raises(InputError, match="lists no images: the train split is empty") as error:
        run_training(data, work, epochs=6)
    assert error.value.where.endswith("ImageSets/Main/train.txt")
    assert folder_digest(work / "snapshots") == before


def test_validation_split_without_boxes_is_refused(tmp_path):
    data = make_voc(tmp_path / "voc", train=4, val=3, val_boxes=False)
    with pytest.raises(InputError, match="hold no boxes: validation mAP cannot be computed") as error:
        run_training(data, tmp_path / "work", epochs=1)
    assert error.value.where.endswith("ImageSets/Main/val.txt")
    assert not (tmp_path / "work" / "snapshots").exists()


def test_classes_that_differ_from_the_dataset_are_refused(trained, voc, tmp_path):
    work = copy_of(trained[0], tmp_path)
    before = folder_digest(work / "snapshots")
    with pytest.raises(InputError, match=r"classes \['grab', 'drop'\] differ from the configured classes "
                                         r"\['drop', 'grab'\]") as error:
        run_training(voc, work, classes=("drop", "grab"), epochs=6)
    assert error.value.where.endswith("classes.json")
    assert folder_digest(work / "snapshots") == before


def test_an_object_of_an_unknown_class_names_its_file(voc, tmp_path):
    data = broken_voc(voc, tmp_path)
    annotation = data / "Annotations" / "train_003.xml"
    annotation.write_text(annotation.read_text().replace("<name>drop</name>", "<name>wave</name>", 1))
    with pytest.raises(InputError, match="class name 'wave' not found") as error:
        run_training(data, tmp_path / "work", epochs=1)
    assert error.value.where == str(annotation)


def test_corrupt_or_unrelated_weights_are_refused_with_snapshots_intact(trained, voc, tmp_path):
    work = copy_of(trained[0], tmp_path)
    before = folder_digest(work / "snapshots")
    corrupt = tmp_path / "weights.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(2048))
    with pytest.raises(InputError, match="is not a readable Keras .h5 weights file") as error:
        run_training(voc, work, epochs=6, weights=str(corrupt))
    assert error.value.where == str(corrupt)

    import tf_keras

    unrelated = tmp_path / "unrelated.h5"
    inputs = tf_keras.Input((4,))
    tf_keras.Model(inputs, tf_keras.layers.Dense(2, name="some_dense")(inputs)).save_weights(str(unrelated))
    with pytest.raises(InputError, match="shares no layer with"):
        run_training(voc, work, epochs=6, weights=str(unrelated))
    assert folder_digest(work / "snapshots") == before


def test_nan_loss_stops_with_a_clear_message_and_earlier_snapshots_kept(voc, tmp_path):
    work = tmp_path / "work"
    # A huge learning rate: epoch 1's single step still has a finite loss, then the weights blow up.
    with pytest.raises(InputError, match=r"training diverged: the loss became nan in epoch 2, batch 1; "
                                         r"lower train.learning_rate \(now 1e\+12\)"):
        run_training(voc, work, epochs=3, steps=1, learning_rate=1e12)
    assert sorted(path.name for path in (work / "snapshots").glob("*.h5")) == [SNAPSHOT.format(1)]
    progress = json.loads((work / "snapshots" / "progress.json").read_text())
    assert [record["epoch"] for record in progress["records"]] == [1]
    assert len(metrics_rows(work)) == 1


def test_too_little_disk_for_a_snapshot_stops_before_training(trained, voc, tmp_path):
    work = copy_of(trained[0], tmp_path)
    before = folder_digest(work / "snapshots")
    free_mb = shutil.disk_usage(work).free // 2**20
    with pytest.raises(InputError, match="too little disk space for the next snapshot") as error:
        run_training(voc, work, epochs=6, min_free_mb=free_mb + 1_000_000)  # whatever other work frees meanwhile
    assert error.value.where == str(work / "snapshots")
    assert folder_digest(work / "snapshots") == before


def test_command_line_error_is_one_line(voc, tmp_path):
    data = broken_voc(voc, tmp_path)
    (data / "ImageSets" / "Main" / "train.txt").write_text("\n")
    work = tmp_path / "work"
    result = subprocess.run(
        [sys.executable, "-m", "detflow.train", str(data), "--metrics", str(work / "metrics.csv"),
         "--summary", str(work / "training.json"), "--snapshots", str(work / "snapshots"),
         "--tensorboard", str(work / "tensorboard"), "--classes", "grab,drop", *settings_options()],
        capture_output=True, text=True,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {data}/ImageSets/Main/train.txt: lists no images: the train split is empty")
    assert "Traceback" not in result.stderr


def test_the_command_line_has_no_silent_defaults_for_settings(tmp_path):
    """config.yaml is the one source of the settings: a missing one is named, never defaulted."""
    options = settings_options()
    at = options.index("--image-min-side")
    result = subprocess.run(
        [sys.executable, "-m", "detflow.train", str(tmp_path), "--metrics", "m.csv", "--summary", "t.json",
         "--snapshots", "s", "--tensorboard", "tb", *options[:at], *options[at + 2:]], capture_output=True, text=True)
    assert result.returncode == 2 and "the following arguments are required: --image-min-side" in result.stderr


# ---------------------------------------------------------------- through Snakemake


def test_killed_training_resumes_at_the_right_epoch_through_snakemake(workflow_copy, voc):
    """kill -9 of Snakemake's whole process group in the middle of epoch 2, then
    `snakemake --rerun-incomplete` continues from snapshot 1 with its optimizer state."""
    steps = 20
    workflow_copy.set_config(train={**TINY_TRAIN, "epochs": 3, "steps": steps})
    root = workflow_copy.root
    shutil.copytree(voc, root / "results" / "voc")
    # Only the training rule: the VOC tree above, and a manifest of what training reads, stand in for
    # the data stages.
    (root / "results" / "voc" / "training_inputs.json").write_text('{"digest": "the VOC tree above"}\n')
    target = ["--allowed-rules", "train", "--", "results/training/default/training.json"]
    command = [sys.executable, "-m", "snakemake", "--cores", "2", *target]
    job = subprocess.Popen(command, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    log_file = root / "logs" / "train" / "default.log"
    progress_file = root / "results" / "training" / "default" / "snapshots" / "progress.json"
    deadline = time.time() + 600
    try:
        while time.time() < deadline and job.poll() is None:
            if log_file.is_file() and "Epoch 2/3" in log_file.read_text():
                break
            time.sleep(0.05)
        assert job.poll() is None, "training ended before it could be killed"
        time.sleep(0.2)
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    log_size = log_file.stat().st_size
    time.sleep(1)
    assert log_file.stat().st_size == log_size, "the training job outlived the kill"
    records = json.loads(progress_file.read_text())["records"]
    assert [record["epoch"] for record in records] == [1], "killed in the middle of epoch 2"

    workflow_copy.snakemake("--unlock")  # the killed Snakemake left its lock behind
    rerun = workflow_copy.snakemake("--rerun-incomplete", *target)
    assert "train" in rerun.stdout
    summary = json.loads((root / "results" / "training" / "default" / "training.json").read_text())
    snapshot = f"results/training/default/snapshots/{SNAPSHOT.format(1)}"
    assert summary["resumed_from"] == {"epoch": 1, "snapshot": snapshot, "optimizer_iterations": steps}
    assert summary["optimizer_iterations"] == 3 * steps and summary["epochs_completed"] == 3
    assert "resuming after epoch 1" in log_file.read_text()
    scalars = logged_scalars(root / "results" / "training" / "default" / "tensorboard" / "train")
    assert sorted(scalars["epoch_mAP"]) == [0, 1, 2]
    rows = list(csv.DictReader(open(root / "results" / "training" / "default" / "metrics.csv")))
    assert [row["epoch"] for row in rows] == ["1", "2", "3"]
    assert rows[0]["loss"] == repr(records[0]["loss"])


# ---------------------------------------------------------------- another backbone family


@pytest.mark.slow
def test_another_backbone_family_trains_with_its_pyramid_shapes(voc, tmp_path):
    """Like MobileNet (every other test), DenseNet needs the generator's pyramid shapes computed from
    the model: without them keras-retinanet's focal loss fails with a GatherNd index error."""
    backbone = "densenet121"
    summary = run_training(voc, tmp_path / "work", backbone=backbone, epochs=1, steps=1, batch_size=1)
    assert summary["epochs_completed"] == 1 and summary["backbone"] == backbone
    assert np.isfinite(float(metrics_rows(tmp_path / "work")[0]["loss"]))
    assert (tmp_path / "work" / "snapshots" / f"{backbone}_pascal_01.h5").is_file()

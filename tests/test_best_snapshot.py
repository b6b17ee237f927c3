"""Best snapshot stage: event files with known values written through
tf.summary (as Keras's TensorBoard callback writes them), read back with
tensorboard's event reader, mapped from steps (from 0) to snapshots (from 1),
and the choice across training variants."""
import json
import subprocess
import sys

import pytest
import tensorflow as tf

from detflow.best_snapshot import select_best_snapshot
from detflow.lib.cli import InputError

PATTERN = "resnet50_pascal_{epoch:02d}.h5"


def write_scalars(run_dir, values_by_tag):
    """One event file with ``{tag: [value at step 0, value at step 1, ...]}``."""
    writer = tf.summary.create_file_writer(str(run_dir))
    with writer.as_default():
        for tag, values in values_by_tag.items():
            for step, value in enumerate(values):
                if value is not None:
                    tf.summary.scalar(tag, value, step=step)
    writer.close()


def training_run(tmp_path, values_by_tag, epochs=None):
    """A training folder as the training stage leaves it; returns training.json's path."""
    snapshots = tmp_path / "snapshots"
    snapshots.mkdir(parents=True)
    epochs = epochs or max(len(values) for values in values_by_tag.values())
    for epoch in range(1, epochs + 1):
        (snapshots / PATTERN.format(epoch=epoch)).write_bytes(f"weights of epoch {epoch}".encode())
    write_scalars(tmp_path / "tensorboard" / "train", values_by_tag)
    training = {
        "backbone": "resnet50", "feature_size": 256, "classes": {"grab": 0, "drop": 1},
        "settings": {"image_min_side": 160, "image_max_side": 224}, "epochs_completed": epochs,
        "snapshot_dir": str(snapshots), "snapshot_pattern": PATTERN,
        "tensorboard_dir": str(tmp_path / "tensorboard"), "tensorboard_run": "train",
    }
    path = tmp_path / "training.json"
    path.write_text(json.dumps(training))
    return path


def select(tmp_path, training_json, metric):
    """The choice among variants {name: training.json}, or of one training.json (the variant "default")."""
    trainings = training_json if isinstance(training_json, dict) else {"default": training_json}
    model = tmp_path / "model"
    best = select_best_snapshot(trainings, metric, model / "best.json", model / "best_snapshot.h5")
    assert json.loads((model / "best.json").read_text()) == best
    return best, (model / "best_snapshot.h5").read_bytes()


LOGGED = {
    "epoch_mAP": [0.10, 0.42, 0.30, 0.42, 0.25],  # best 0.42 at steps 1 and 3: the earliest, step 1
    "epoch_loss": [2.5, 1.9, 1.2, 1.4, 1.2],  # best 1.2 at steps 2 and 4: the earliest, step 2
}


def test_map_is_maximised_ties_go_to_the_earliest_and_step_maps_to_snapshot(tmp_path):
    best, copied = select(tmp_path, training_run(tmp_path, LOGGED), "mAP")
    assert (best["metric"], best["tag"], best["goal"]) == ("mAP", "epoch_mAP", "max")
    assert (best["step"], best["epoch"]) == (1, 2)  # TensorBoard counts epochs from 0, snapshots from 1
    assert best["value"] == pytest.approx(0.42)
    assert best["snapshot"] == str(tmp_path / "snapshots" / "resnet50_pascal_02.h5")
    assert copied == b"weights of epoch 2"
    assert [(entry["epoch"], entry["step"]) for entry in best["values"]] == [(1, 0), (2, 1), (3, 2), (4, 3), (5, 4)]
    assert [entry["value"] for entry in best["values"]] == pytest.approx(LOGGED["epoch_mAP"])
    assert (best["backbone"], best["feature_size"], best["classes"]) == ("resnet50", 256, {"grab": 0, "drop": 1})


def test_loss_is_minimised_ties_go_to_the_earliest(tmp_path):
    best, copied = select(tmp_path, training_run(tmp_path, LOGGED), "loss")
    assert (best["metric"], best["tag"], best["goal"]) == ("loss", "epoch_loss", "min")
    assert (best["step"], best["epoch"], best["value"]) == (2, 3, pytest.approx(1.2))
    assert copied == b"weights of epoch 3"


def test_a_step_logged_again_after_a_resume_counts_with_its_last_value(tmp_path):
    training_json = training_run(tmp_path, LOGGED)
    # A resumed run redid epoch 4 (step 3), e.g. killed after logging it but before its snapshot.
    write_scalars(tmp_path / "tensorboard" / "train", {"epoch_mAP": [None, None, None, 0.9]})
    best, copied = select(tmp_path, training_json, "mAP")
    assert (best["step"], best["epoch"], best["value"]) == (3, 4, pytest.approx(0.9))
    assert copied == b"weights of epoch 4"
    assert len(best["values"]) == 5


def test_the_best_epoch_of_all_variants_is_chosen_and_every_variant_best_is_recorded(tmp_path):
    small = training_run(tmp_path / "small", LOGGED)  # best mAP 0.42 at epoch 2
    wide = training_run(tmp_path / "wide", {"epoch_mAP": [0.2, 0.3, 0.5, 0.1], "epoch_loss": [3, 2, 2.2, 1.2]})
    best, copied = select(tmp_path, {"small": small, "wide": wide}, "mAP")
    assert (best["variant"], best["epoch"], best["value"]) == ("wide", 3, pytest.approx(0.5))
    assert copied == b"weights of epoch 3"
    assert best["snapshot"] == str(tmp_path / "wide" / "snapshots" / PATTERN.format(epoch=3))
    assert best["training_json"] == str(wide) and len(best["values"]) == 4  # the chosen variant's every epoch
    assert [(item["variant"], item["best_epoch"], round(item["value"], 4)) for item in best["variants"]] == [
        ("small", 2, 0.42), ("wide", 3, 0.5)]
    # By loss both reach 1.2: the tie goes to the variant listed first.
    best, _ = select(tmp_path, {"wide": wide, "small": small}, "loss")
    assert (best["variant"], best["epoch"]) == ("wide", 4)
    best, _ = select(tmp_path, {"small": small, "wide": wide}, "loss")
    assert (best["variant"], best["epoch"]) == ("small", 3)


def test_a_missing_metric_is_a_clear_error(tmp_path):
    training_json = training_run(tmp_path, {"epoch_loss": LOGGED["epoch_loss"]})
    with pytest.raises(InputError, match=r"no 'epoch_mAP' in the TensorBoard logs \(tags found: epoch_loss\)"):
        select(tmp_path, training_json, "mAP")
    assert not (tmp_path / "model" / "best.json").exists()


def test_an_empty_log_folder_is_a_clear_error(tmp_path):
    training_json = training_run(tmp_path, LOGGED)
    for event_file in (tmp_path / "tensorboard" / "train").iterdir():
        event_file.unlink()
    with pytest.raises(InputError, match="holds no TensorBoard event files") as error:
        select(tmp_path, training_json, "loss")
    assert error.value.where == str(tmp_path / "tensorboard" / "train")


def test_a_missing_snapshot_is_a_clear_error(tmp_path):
    training_json = training_run(tmp_path, LOGGED)
    (tmp_path / "snapshots" / "resnet50_pascal_03.h5").unlink()
    with pytest.raises(InputError, match="is missing, but epoch 3 of variant default is the best by loss"):
        select(tmp_path, training_json, "loss")


def test_command_line(tmp_path):
    training_json = training_run(tmp_path, LOGGED)
    model = tmp_path / "model"
    command = [sys.executable, "-m", "detflow.best_snapshot", str(model / "best.json"),
               str(model / "best_snapshot.h5"), "--training", f"default={training_json}", "--metric", "loss"]
    subprocess.run(command, check=True, capture_output=True)
    assert json.loads((model / "best.json").read_text())["epoch"] == 3
    for event_file in (tmp_path / "tensorboard" / "train").glob("events.*"):
        event_file.unlink()
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path}/tensorboard/train: holds no TensorBoard event files: has training run?")

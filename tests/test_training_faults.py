"""Training when Snakemake is killed and its training is not: the lock on the working folder
(a second training stops naming the PID that holds it; kill -9 releases it) and the adoption of
a finished run whose outputs Snakemake deleted. Real processes, the tiny settings of
helpers.models."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from detflow import train as training
from detflow.lib.cli import InputError
from detflow.lib.training.checkpoints import LOCK_FILE, working_folder_lock
from detflow.lib.training.settings import Settings
from helpers.models import TINY_SETTINGS, settings_options
from helpers.voc import CLASSES, make_voc


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    """A small tree: 4 train and 2 val images."""
    return make_voc(tmp_path_factory.mktemp("data") / "voc", train=4, val=2)


def command(voc_dir, work, **overrides):
    return [sys.executable, "-m", "detflow.train", str(voc_dir), "--metrics", str(work / "metrics.csv"),
            "--summary", str(work / "training.json"), "--snapshots", str(work / "snapshots"),
            "--tensorboard", str(work / "tensorboard"), "--classes", ",".join(CLASSES), "--threads", "1",
            *settings_options(**overrides)]


def hashes(folder):
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(Path(folder).rglob("*")) if path.is_file() and path.name != LOCK_FILE}


def wait_for(condition, what, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def lock_holder(snapshots):
    """The PID written in the lock file, once a training holds it."""
    text = (snapshots / LOCK_FILE).read_text() if (snapshots / LOCK_FILE).is_file() else ""
    return int(text.split()[1]) if text.startswith("PID ") else None


def lock_is_free(snapshots):
    try:
        with working_folder_lock(snapshots):
            return True
    except InputError:
        return False


def test_an_orphaned_training_keeps_a_rerun_out_until_it_is_killed(voc, tmp_path):
    """kill -9 of the training's parent (as of Snakemake) leaves the training running as an orphan:
    a rerun on the same folders stops at once with one line naming the orphan's PID, touching
    nothing; once the orphan is killed (-9) the system has released its lock."""
    work = tmp_path / "work"
    snapshots = work / "snapshots"
    long_run = " ".join(f"'{part}'" for part in command(voc, work, epochs=1000, steps=50))
    parent = subprocess.Popen(["bash", "-c", f"{long_run} > {tmp_path / 'orphan.log'} 2>&1 & wait"],
                              start_new_session=True)
    orphan = None
    try:
        orphan = wait_for(lambda: lock_holder(snapshots), "the first training to hold the lock")
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        os.kill(orphan, 0)  # the training outlived its parent
        rerun = subprocess.run(command(voc, work, epochs=1000, steps=50), capture_output=True, text=True,
                               timeout=600)
        assert rerun.returncode == 1
        last = rerun.stderr.strip().splitlines()[-1]
        assert last.startswith(f"error: {snapshots}: another training is using this folder (PID {orphan} on "), last
        assert "wait for it to end" in last and "Traceback" not in rerun.stderr
        os.kill(orphan, 0)  # the rerun left the running training alone
        assert lock_holder(snapshots) == orphan
    finally:
        if orphan is not None:
            os.kill(orphan, signal.SIGKILL)
        if parent.poll() is None:
            os.kill(parent.pid, signal.SIGKILL)
            parent.wait()
    wait_for(lambda: lock_is_free(snapshots), "the killed training's lock to be released", timeout=30)


def test_a_second_training_started_while_one_runs_stops_naming_its_pid(voc, tmp_path):
    work = tmp_path / "work"
    first = subprocess.Popen(command(voc, work, epochs=1000, steps=50), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: lock_holder(work / "snapshots"), "the first training to hold the lock")
        with pytest.raises(InputError) as error:
            training.train(voc, work / "metrics.csv", work / "training.json", work / "snapshots",
                           work / "tensorboard", Settings(**{**TINY_SETTINGS, "epochs": 1000, "steps": 50}),
                           classes=list(CLASSES))
        assert error.value.where == str(work / "snapshots")
        assert error.value.reason.startswith(f"another training is using this folder (PID {first.pid} on ")
        assert first.poll() is None
    finally:
        first.kill()
        first.wait()


def test_a_finished_run_whose_outputs_were_deleted_is_adopted_not_retrained(voc, tmp_path):
    """Snakemake deletes the outputs of a job it saw fail (or lost); the training that finished
    anyway is adopted: training.json and the metrics CSV come back from progress.json."""
    work = tmp_path / "work"
    first = subprocess.run(command(voc, work, epochs=2, steps=2), capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    trained = json.loads((work / "training.json").read_text())
    metrics = (work / "metrics.csv").read_text()
    before = {"snapshots": hashes(work / "snapshots"), "tensorboard": hashes(work / "tensorboard")}
    (work / "training.json").unlink()
    (work / "metrics.csv").unlink()

    rerun = subprocess.run(command(voc, work, epochs=2, steps=2), capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"adopting the finished run in {work / 'snapshots'}: all 2 epochs trained" in rerun.stderr
    assert "Epoch 1/2" not in rerun.stdout + rerun.stderr and "model:" not in rerun.stderr  # no model, no step
    adopted = json.loads((work / "training.json").read_text())
    assert adopted["optimizer_iterations"] == trained["optimizer_iterations"] == 2 * 2
    assert adopted["adopted"] == {"progress": str(work / "snapshots" / "progress.json"), "epochs": 2,
                                  "stopped": "completed"}
    for key in ("epochs_completed", "stopped", "snapshots", "snapshot_pattern", "fingerprint", "dataset", "resumes"):
        assert adopted[key] == trained[key], key
    assert (work / "metrics.csv").read_text() == metrics
    assert {"snapshots": hashes(work / "snapshots"), "tensorboard": hashes(work / "tensorboard")} == before

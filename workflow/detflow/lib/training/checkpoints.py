"""Checkpoints of a training run: a snapshot per epoch (the model with its
optimizer state) written atomically after a disk-space check, the record of
the run (``progress.json``) from which it resumes or which a rerun adopts when
the run is complete, pruning to the last snapshot plus the best ``keep_best``
by each selection metric (ranked as the best-snapshot stage ranks them, so its
choice always exists), and the lock that keeps a second training out of the
working folder while one runs."""
import fcntl
import json
import logging
import os
import shutil
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from detflow.lib.cli import InputError
from detflow.lib.files import replacing, write_atomically
from detflow.lib.training.selection import METRICS, ranked_steps

log = logging.getLogger(__name__)

SNAPSHOT_PATTERN = "{backbone}_pascal_{{epoch:02d}}.h5"  # the tutorial's names; epochs count from 1
PROGRESS_FILE = "progress.json"
# Held (flock) by the running training, with its PID in it; never deleted, so that every run locks the same file.
LOCK_FILE = "training.lock"


def save_snapshot(model, path, min_free_mb):
    """Write ``path`` atomically (no half-written snapshot after a kill or a full disk)."""
    check_disk_space(path.parent, snapshot_size_estimate(model, path.parent.glob("*.h5")), min_free_mb)
    try:
        with replacing(path) as partial:
            model.save(partial, save_format="h5")
    except OSError as error:
        raise InputError(path.parent, f"the snapshot {path.name} could not be written ({error}); "
                                      "earlier snapshots are kept") from None
    log.info("snapshot %s (%.1f MB)", path, path.stat().st_size / 2**20)


def snapshot_size_estimate(model, earlier_snapshots=()):
    """Bytes of the next snapshot: the size of an earlier one, else weights plus Adam's two moments."""
    sizes = [path.stat().st_size for path in earlier_snapshots if path.is_file()]
    return max(sizes) if sizes else 3 * 4 * model.count_params()


def check_disk_space(folder, needed_bytes, min_free_mb):
    free = shutil.disk_usage(folder).free
    if free - needed_bytes < min_free_mb * 2**20:
        raise InputError(
            folder,
            f"too little disk space for the next snapshot: {free / 2**20:.0f} MB free, a snapshot takes about "
            f"{needed_bytes / 2**20:.0f} MB and train.min_free_mb keeps {min_free_mb} MB free; "
            "free some space (earlier snapshots are kept) and rerun to resume",
        )


class Progress:
    """What a run has done so far, kept beside its snapshots in ``progress.json``."""

    def __init__(self, snapshot_dir, backbone, fingerprint_, records=None, stopped=None, resumes=None):
        self.snapshot_dir = Path(snapshot_dir)
        self.backbone = backbone
        self.fingerprint = fingerprint_
        self.records = records or []
        self.stopped = stopped
        self.resumes = resumes or []

    @property
    def pattern(self):
        return SNAPSHOT_PATTERN.format(backbone=self.backbone)

    def snapshot_path(self, epoch):
        return self.snapshot_dir / self.pattern.format(epoch=epoch)

    @classmethod
    def load(cls, snapshot_dir):
        path = Path(snapshot_dir) / PROGRESS_FILE
        try:
            state = json.loads(path.read_text())
            return cls(snapshot_dir, state["backbone"], state["fingerprint"], state["records"],
                       state["stopped"], state["resumes"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self):
        state = {"backbone": self.backbone, "fingerprint": self.fingerprint, "stopped": self.stopped,
                 "resumes": self.resumes, "records": self.records}
        write_atomically(self.snapshot_dir / PROGRESS_FILE, json.dumps(state, indent=1) + "\n")

    def kept_epochs(self, keep_best):
        """The last epoch, and the best ``keep_best`` by each selection metric."""
        kept = {self.records[-1]["epoch"]}
        for metric in METRICS:
            values = {record["step"]: record[metric] for record in self.records if metric in record}
            kept.update(step + 1 for step in ranked_steps(values, metric)[:keep_best])
        return kept

    def prune(self, keep_best):
        """Mark the snapshots no longer kept as deleted; return their paths (deleted after save())."""
        kept = self.kept_epochs(keep_best)
        pruned = []
        for record in self.records:
            if record["snapshot"] and record["epoch"] not in kept:
                pruned.append(self.snapshot_dir / record["snapshot"])
                record["snapshot"] = None
        return pruned

    def kept_snapshots(self):
        return {record["epoch"]: record["snapshot"] for record in self.records if record["snapshot"]}

    def remove_strays(self):
        """Delete snapshot files this progress does not list (written just before a kill)."""
        listed = set(self.kept_snapshots().values()) | {PROGRESS_FILE, LOCK_FILE}
        for path in self.snapshot_dir.iterdir():
            if path.is_file() and path.name not in listed:
                log.info("removing %s, written after the last recorded epoch", path)
                path.unlink()


def resumable_run(snapshot_dir, fingerprint_, epochs):
    """The earlier run's progress when it can be continued, else None; and why not."""
    previous = Progress.load(snapshot_dir)
    if previous is None:
        return None, "no earlier run"
    if previous.fingerprint != fingerprint_:
        return None, "the dataset, classes, settings or code changed since the earlier run"
    if previous.stopped == "early_stopping":
        return None, "the earlier run stopped early (train.patience)"
    if not previous.records:
        return None, "the earlier run stopped before finishing an epoch"
    if len(previous.records) >= epochs:
        if len(previous.records) > epochs:
            return None, f"the earlier run trained {len(previous.records)} epochs, more than the {epochs} now asked for"
        return None, f"the earlier run trained all {epochs} epochs but some of its snapshots are missing"
    if not previous.snapshot_path(previous.records[-1]["epoch"]).is_file():
        return None, "the earlier run's last snapshot is missing"
    return previous, None


def finished_run(snapshot_dir, fingerprint_, epochs):
    """The earlier run's progress when it is complete and matches: the same fingerprint, exactly
    ``epochs`` epochs trained (so not stopped early) and every snapshot it lists present. Such a run
    is adopted (its outputs written again from the record), never trained again; else None."""
    previous = Progress.load(snapshot_dir)
    if (previous is None or previous.fingerprint != fingerprint_ or previous.stopped == "early_stopping"
            or len(previous.records) != epochs):
        return None
    if not all((previous.snapshot_dir / name).is_file() for name in previous.kept_snapshots().values()):
        return None
    return previous


def clear_folders(*folders):
    """Empty the working folders of an earlier run (ours alone: results/training/...), keeping the lock file
    that the running training holds."""
    for folder in map(Path, folders):
        folder.mkdir(parents=True, exist_ok=True)
        for path in folder.iterdir():
            if path.name == LOCK_FILE:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


@contextmanager
def working_folder_lock(folder):
    """Hold an exclusive lock on the training's working folder while the block runs.

    An OS lock (``flock``) on ``folder/training.lock``: the system releases it when the holder ends,
    however it ends (kill -9 included), so no stale lock is ever left behind. The holder writes its PID
    and host into the file; a second training stops at once with an InputError that names
    them rather than waiting: the first may run for hours, and a waiting job would hold its cluster
    slot and time limit doing nothing, out of the user's sight.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(folder, f"another training is using this folder ({_holder(descriptor)}); wait for it "
                                     "to end, then run again (a finished run is adopted, an interrupted one resumed), "
                                     "or stop it first") from None
        os.ftruncate(descriptor, 0)
        # The same bytes for every run of one process: the file's content says only who holds it.
        os.pwrite(descriptor, f"PID {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        yield path
    finally:
        os.close(descriptor)  # releases the lock


def _holder(descriptor):
    """What the lock file says about its holder (written just after it took the lock: retried briefly)."""
    for _ in range(20):
        text = os.pread(descriptor, 1000, 0).decode(errors="replace").strip()
        if text:
            return text
        time.sleep(0.05)
    return "its PID is not written yet"

"""ImageNet weights fetched once by the local rule imagenet_weights (detflow.weights), from a real HTTP
server started on 127.0.0.1 for the test (Python's http.server, stopped by its PID): the file arrives
checked, a corrupt one is refused leaving nothing, a server that is down gives one line saying what to
download by hand and where to put it, and training gets the file's path and never downloads."""
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from helpers.config import config_options
from helpers.models import settings_options
from helpers.workflow import TINY_DEMO, TINY_WORKFLOW, workflow_rules

BACKBONE = "mobilenet128_0.25"
LIBRARY_FILE = "mobilenet_2_5_128_tf_no_top.h5"  # the name keras-retinanet gives this backbone's weights
TARGET = f"resources/weights/{BACKBONE}_imagenet.h5"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def mirror(tmp_path):
    """A folder served over HTTP on 127.0.0.1; yields (folder, base URL)."""
    folder, port = tmp_path / "mirror", free_port()
    folder.mkdir()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                               "--directory", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield folder, f"http://127.0.0.1:{port}"
    finally:
        os.kill(server.pid, signal.SIGTERM)
        server.wait(timeout=10)


def weights_file(path):
    """A small real HDF5 weights file; returns its sha256."""
    with h5py.File(path, "w") as weights:
        weights.create_dataset("conv1/kernel", data=np.arange(3 * 3 * 3 * 8, dtype="float32").reshape(3, 3, 3, 8))
        weights.attrs["layer_names"] = [b"conv1"]
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(out, *options):
    return subprocess.run([sys.executable, "-m", "detflow.weights", BACKBONE, str(out), *config_options("weights"),
                           *options],
                          capture_output=True, text=True, timeout=300)


def test_the_rule_fetches_the_library_file_from_the_configured_address(mirror, workflow_copy):
    folder, base_url = mirror
    weights_file(folder / LIBRARY_FILE)
    workflow_copy.set_config(demo=TINY_DEMO, weights={"base_url": base_url, "attempts": 1},
                             train={**TINY_WORKFLOW["train"], "weights": "imagenet"})
    workflow_copy.snakemake(TARGET)
    assert (workflow_copy.root / TARGET).read_bytes() == (folder / LIBRARY_FILE).read_bytes()
    assert workflow_rules(workflow_copy.root)["imagenet_weights"]["local"]  # on the login node, with internet
    # Training is given the file and waits for it; fetched once, it is not fetched again.
    plan = workflow_copy.snakemake("-n", "-p", "results/training/default/training.json").stdout
    assert f"--weights {TARGET}" in plan and "rule imagenet_weights" not in plan


def test_a_checksum_is_checked_and_a_corrupt_file_is_refused_leaving_nothing(mirror, tmp_path):
    folder, base_url = mirror
    checksum = weights_file(folder / LIBRARY_FILE)
    out = tmp_path / "weights" / "start.h5"
    assert fetch(out, "--base-url", base_url, "--checksum", checksum).returncode == 0
    assert hashlib.sha256(out.read_bytes()).hexdigest() == checksum
    out.unlink()
    with open(folder / LIBRARY_FILE, "r+b") as served:  # one byte changed on the server
        served.seek(-1, os.SEEK_END)
        last = served.read(1)
        served.seek(-1, os.SEEK_END)
        served.write(bytes([last[0] ^ 0xFF]))
    refused = fetch(out, "--base-url", base_url, "--checksum", checksum, "--attempts", "1")
    assert refused.returncode == 1
    line = refused.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {base_url}/{LIBRARY_FILE}: checksum ") and f"the expected {checksum}" in line
    assert list((tmp_path / "weights").iterdir()) == []  # no file, no partial download


def test_a_file_that_is_not_hdf5_is_refused(mirror, tmp_path):
    folder, base_url = mirror
    (folder / LIBRARY_FILE).write_text("<html>Not Found</html>")  # e.g. a proxy's error page
    out = tmp_path / "weights" / "start.h5"
    result = fetch(out, "--base-url", base_url, "--attempts", "1")
    assert result.returncode == 1 and "is not an HDF5 (.h5) weights file" in result.stderr
    assert list(out.parent.iterdir()) == []


def test_no_network_gives_one_line_with_the_url_to_download_by_hand(tmp_path):
    base_url = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    out = tmp_path / TARGET
    started = time.monotonic()
    result = fetch(out, "--base-url", base_url, "--attempts", "2")
    assert result.returncode == 1
    assert time.monotonic() - started >= 2  # retried once, after waiting 2 s
    assert "attempt 1 of 2" in result.stderr and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {out}: could not download {base_url}/{LIBRARY_FILE} (")
    assert line.endswith(f"download that URL by hand where there is one and save it as {out}")
    assert not out.exists()


def test_the_default_address_is_keras_retinanets_own(workflow_copy):
    workflow_copy.set_config(demo=TINY_DEMO, train={**TINY_WORKFLOW["train"], "weights": "imagenet"})
    plan = workflow_copy.snakemake("-n", "-p", TARGET).stdout
    assert f"python -m detflow.weights {BACKBONE} {TARGET} --base-url none --attempts 4" in plan  # the library's own
    from detflow.lib.model import retinanet

    assert retinanet.imagenet_weights_source(BACKBONE) == (
        LIBRARY_FILE, f"https://github.com/fchollet/deep-learning-models/releases/download/v0.6/{LIBRARY_FILE}", None)
    assert retinanet.imagenet_weights_source("resnet50")[2] == "3e9f4e4f77bbe2c9bec13b53ee1c2319"  # md5


def test_training_never_downloads(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "detflow.train", str(tmp_path / "voc"), "--metrics", "m.csv", "--summary", "t.json",
         "--snapshots", "s", "--tensorboard", "tb", *settings_options(weights="imagenet")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: --weights imagenet: training never downloads")

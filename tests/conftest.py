"""The pytest fixtures that several test files use. Plain helper code (videos, VOC trees, small
models, the workflow copy) is in tests/helpers/, importable as ``helpers`` (pyproject.toml puts
tests/ on the path)."""
import pytest

from helpers.desktop import install_missing, start_display
from helpers.voc import PLUMS, make_voc
from helpers.workflow import WorkflowCopy


@pytest.fixture
def workflow_copy(tmp_path):
    """A private copy of the workflow's code with its own config.yaml, to run Snakemake in."""
    return WorkflowCopy(tmp_path / "project")


@pytest.fixture
def plums():
    """The real plums data in ../shared (PlumsVOC.zip and raw_frames/); the test skips without it."""
    if not (PLUMS / "PlumsVOC.zip").exists():
        pytest.skip("../shared/data/plums is absent")
    return PLUMS


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    """A synthetic VOC tree laid out as the dataset and splits stages write it: 16 train and 6 val
    images. A test file that needs other counts defines its own ``voc``; ``model_path`` uses that one."""
    return make_voc(tmp_path_factory.mktemp("data") / "voc")


@pytest.fixture(scope="module")
def model_path(voc, tmp_path_factory):
    """A small calibrated inference model (.h5, with its description) initialised on voc's train images."""
    from helpers.models import make_inference_model  # TensorFlow only where a model is used

    return make_inference_model(tmp_path_factory.mktemp("model") / "inference.h5",
                                sorted((voc / "JPEGImages").glob("train_*.jpg")))


@pytest.fixture(scope="module")
def model(model_path):
    """That model, loaded and checked against its description as the stages load it."""
    from detflow.lib.inference import detector as inference
    from detflow.lib.model.card import read_card

    return inference.load_inference_model(model_path, read_card(model_path))


@pytest.fixture(scope="module")
def display(tmp_path_factory):
    """A private X display (Xvfb) for the module, as the environment of a program to show windows on;
    stopped by its PID afterwards."""
    reason = install_missing()
    if reason:
        pytest.skip(reason)
    server, name = start_display()
    home = tmp_path_factory.mktemp("home")  # labelImg keeps its settings in ~/.labelImgSettings.pkl
    yield {"DISPLAY": name, "HOME": str(home), "XDG_RUNTIME_DIR": str(home)}
    server.terminate()
    server.wait(timeout=10)

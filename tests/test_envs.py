"""The conda environment of every rule (envs/*.yaml): each file parses, every
rule that runs a command names one, each environment holds what its rules'
code imports, and its pins are the pip installation's (requirements*.txt).

Conda channels are not reachable here, so the environments are not created:
these tests check the files as conda and Snakemake will read them."""
import importlib.metadata
import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from detflow.lib.code_graph import third_party_imports
from helpers.workflow import REPO, workflow_rules

ENVS = REPO / "envs"
ENV_FILES = sorted(ENVS.glob("*.yaml"))
# keras-retinanet declares opencv-python; the environments carry the headless
# build of the same cv2 module, as the pip installation does.
SAME_MODULE = {"opencv-python": "opencv-python-headless"}


def read_pins(path):
    """{normalised name: version} of a pip requirements file of exact pins."""
    pins = {}
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            pins[canonicalize_name(requirement.name)] = exact_version(requirement)
    return pins


def exact_version(requirement):
    specifiers = list(requirement.specifier)
    assert len(specifiers) == 1 and specifiers[0].operator == "==", f"{requirement} is not an exact pin"
    return specifiers[0].version


def pip_requirements(env):
    """The pip section of a parsed environment file, as Requirements."""
    sections = [item["pip"] for item in env["dependencies"] if isinstance(item, dict) and "pip" in item]
    assert len(sections) == 1, "one pip section"
    return [Requirement(line) for line in sections[0]]


def post_deploy_requirements(env_file):
    """Packages that Snakemake's <env>.post-deploy.sh installs into the environment."""
    script = env_file.with_name(env_file.stem + ".post-deploy.sh")
    if not script.exists():
        return []
    return [Requirement(pin) for pin in re.findall(r"\bpip install [^\n]*?([A-Za-z0-9_.\-\[\]]+==[^\s]+)",
                                                   script.read_text())]


def provided_distributions(env_file):
    env = yaml.safe_load(env_file.read_text())
    return {canonicalize_name(requirement.name)
            for requirement in pip_requirements(env) + post_deploy_requirements(env_file)}


@pytest.fixture(scope="module")
def rules():
    return workflow_rules()


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda path: path.name)
def test_environment_file_parses_with_python_and_exact_pip_pins(env_file):
    env = yaml.safe_load(env_file.read_text())
    assert set(env) == {"channels", "dependencies"}
    assert "conda-forge" in env["channels"]
    conda_packages = [item for item in env["dependencies"] if isinstance(item, str)]
    assert "python=3.11" in conda_packages and "pip" in conda_packages
    requirements = pip_requirements(env)
    assert requirements
    for requirement in requirements:
        exact_version(requirement)


def test_the_three_kinds_of_environment_exist():
    assert [path.name for path in ENV_FILES] == ["report.yaml", "training.yaml", "video.yaml"]


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda path: path.name)
def test_pins_agree_with_the_pip_installation(env_file):
    pins = read_pins(REPO / "requirements.txt")
    env = yaml.safe_load(env_file.read_text())
    for requirement in pip_requirements(env):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{env_file.name}: {requirement.name} is not in requirements.txt"
        assert exact_version(requirement) == pins[name], f"{env_file.name}: {requirement} but requirements.txt pins {pins[name]}"


def test_keras_retinanet_is_installed_after_deployment_as_setup_does():
    """keras-retinanet builds against the environment's numpy: pip's --no-deps --no-build-isolation
    --no-cache-dir, with the pin of requirements-retinanet.txt, in Snakemake's post-deploy script."""
    script = ENVS / "training.post-deploy.sh"
    text = script.read_text()
    assert text.startswith("#!")
    assert script.stat().st_mode & 0o111, "post-deploy script is executable"
    install = next(line for line in text.splitlines() if "pip install" in line)
    for option in ("--no-deps", "--no-build-isolation", "--no-cache-dir"):
        assert option in install
    pins = {canonicalize_name(r.name): exact_version(r) for r in post_deploy_requirements(ENVS / "training.yaml")}
    assert pins == read_pins(REPO / "requirements-retinanet.txt")
    # what it needs to build: numpy and cython in the environment, and a C compiler
    provided = provided_distributions(ENVS / "training.yaml")
    assert {"numpy", "cython"} <= provided
    assert "c-compiler" in yaml.safe_load((ENVS / "training.yaml").read_text())["dependencies"]


def test_every_rule_that_runs_a_command_has_its_conda_environment(rules):
    running = {name: rule for name, rule in rules.items() if rule["runs"]}
    assert {"extract_frames", "train"} <= set(running)
    for name, rule in running.items():
        assert rule["conda"], f"rule {name} has no conda: directive"
        env = Path(rule["conda"])
        assert env.parent == ENVS and env.exists(), f"rule {name}: conda: {rule['conda_as_written']} is not a file in envs/"
        assert rule["conda_as_written"] == f"../envs/{env.name}"


def test_each_environment_holds_what_its_rules_import(rules):
    """Every third-party module that a rule's stage imports (following detflow's own imports)
    comes from a distribution that the rule's environment installs."""
    distributions = importlib.metadata.packages_distributions()
    checked, missing = 0, []
    for name, rule in rules.items():
        if not rule["runs"]:
            continue
        stages = re.findall(r"python -m detflow\.(\w+)", rule["shell"] or "")
        assert stages, f"rule {name} does not run a detflow stage"
        env_file = Path(rule["conda"])
        provided = provided_distributions(env_file)
        for stage in stages:
            for module in third_party_imports(f"detflow.{stage}"):
                assert module in distributions, f"detflow.{stage} imports {module}, which is not installed"
                names = {canonicalize_name(SAME_MODULE.get(dist, dist)) for dist in distributions[module]}
                if not names & provided:
                    missing.append(f"rule {name}: detflow.{stage} imports {module}, not in {env_file.name}")
                checked += 1
    assert not missing
    assert checked > 10


def test_training_environment_has_keras_retinanets_runtime_needs():
    """keras-retinanet is installed without its dependencies: the environment lists them itself."""
    provided = provided_distributions(ENVS / "training.yaml")
    declared = [Requirement(text) for text in importlib.metadata.requires("keras-retinanet")]
    for requirement in declared:
        name = canonicalize_name(SAME_MODULE.get(requirement.name.lower(), requirement.name))
        assert name in provided, f"keras-retinanet needs {requirement.name}"


def test_training_environment_brings_cuda_for_tensorflow():
    """TensorFlow's GPU libraries as pip wheels, so the environment trains on a GPU node wherever it was built."""
    env = yaml.safe_load((ENVS / "training.yaml").read_text())
    tensorflow = next(r for r in pip_requirements(env) if canonicalize_name(r.name) == "tensorflow")
    assert tensorflow.extras == {"and-cuda"}

"""The package's two layers, read from the code's own imports: stages
(``python -m detflow.<stage>``) import only the library (``detflow.lib``), never
each other; library modules import only the library, each subpackage only those
below it. And a rule's code inputs are the files its stage runs, derived from
those imports."""
import ast
import re

import pytest

from detflow.lib.code_graph import (
    direct_imports, library_modules, library_package, module_file, module_files, package_closure, stage_modules,
)
from helpers.workflow import REPO

RULES = REPO / "rules"
# What each library subpackage may import besides itself ("" is the library's root: cli, config, files, ...).
LIBRARY_LAYERS = {
    "": set(),
    "data": {""},
    "metrics": {""},
    "model": {""},
    "inference": {"", "data", "model", "metrics"},
    "training": {"", "data", "model", "metrics"},
    "labelling": {"", "data", "metrics"},
}


def test_the_layers_are_where_their_folders_say():
    stages = {name.removeprefix("detflow.") for name in stage_modules()}
    assert {"frames", "frames_to_label", "labelimg", "dataset", "splits", "training_inputs", "train",
            "best_snapshot", "convert", "export", "predict", "evaluate", "report", "drafts", "next_frames", "label_studio",
            "label_studio_backend", "demo", "demo_labeller", "live", "weights"} == stages
    assert {"detflow.lib.cli", "detflow.lib.inference.detector", "detflow.lib.model.card", "detflow.lib.data.voc_tree",
            "detflow.lib.files", "detflow.lib.data.videos"} <= set(library_modules())
    assert {library_package(module) for module in library_modules()} == set(LIBRARY_LAYERS)


@pytest.mark.parametrize("stage", stage_modules())
def test_a_stage_imports_only_the_library(stage):
    outside = sorted(name for name in direct_imports(stage)[0] if not name.startswith("detflow.lib"))
    assert not outside, f"{stage} imports {', '.join(outside)}: what two stages share belongs in detflow.lib"


@pytest.mark.parametrize("module", library_modules())
def test_a_library_module_imports_only_the_library(module):
    outside = sorted(name for name in direct_imports(module)[0] if not name.startswith("detflow.lib"))
    assert not outside, f"{module} imports the stage(s) {', '.join(outside)}"


@pytest.mark.parametrize("module", library_modules())
def test_a_library_package_imports_only_those_below_it(module):
    own = library_package(module)
    allowed = LIBRARY_LAYERS[own] | {own}
    above = sorted(name for name in direct_imports(module)[0] if name.startswith("detflow.lib.")
                   and module_file(name).name != "__init__.py" and library_package(name) not in allowed)
    assert not above, f"{module} ({own or 'root'}) imports {', '.join(above)}, which is not below it"


@pytest.mark.parametrize("module", library_modules())
def test_the_library_takes_values_not_command_lines(module):
    """Library functions take paths and values: only the command-line module (cli) knows argparse."""
    if module != "detflow.lib.cli":
        assert "argparse" not in module_file(module).read_text(), f"{module} uses argparse"


@pytest.mark.parametrize("stage", stage_modules())
def test_a_stage_has_a_command_line(stage):
    tree = ast.parse(module_file(stage).read_text())
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert "main" in functions and 'if __name__ == "__main__":' in module_file(stage).read_text()


def test_imports_inside_functions_count_and_closures_follow_them():
    """label_studio loads the model only for drafts, inside a function: its jobs still depend on that code."""
    assert "detflow.lib.inference.detector" in direct_imports("detflow.label_studio")[0]
    closure = package_closure("detflow.predict")
    assert {"detflow.lib.model.retinanet", "detflow.lib.model.card", "detflow.lib.cli", "detflow",
            "detflow.lib.model"} <= closure
    files = module_files("detflow.frames")
    assert module_file("detflow.lib.data.videos") in files and module_file("detflow.lib.inference.detector") not in files


def test_each_rule_takes_the_code_of_the_stage_it_runs_as_input():
    """No hand-kept module lists: a rule that runs ``python -m detflow.<stage>`` has exactly
    ``code=stage_code("<stage>")``, which derives the files from the imports."""
    checked = 0
    for smk in sorted(RULES.glob("*.smk")):
        for block in re.split(r"\n(?=rule \w+:|use rule )", smk.read_text())[1:]:
            runs = set(re.findall(r"python -m detflow\.(\w+)", block))
            if runs:
                name = block.split(":", 1)[0]
                assert re.findall(r"code=stage_code\(([^)]*)\)", block) == [f'"{stage}"' for stage in runs], name
                checked += 1
    assert checked >= 20

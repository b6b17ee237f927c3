"""The package's own import graph, read from its source (nothing is imported).

It answers "which files does a stage run?" (a rule's code inputs, so that
editing any of them reruns exactly the jobs that run it), "does a stage import
another stage?" (the layer rule) and "which third-party packages does a stage
need?" (its conda environment). Every ``import`` counts, including those inside
functions.
"""
import ast
import sys
from functools import lru_cache
from pathlib import Path

PACKAGE = "detflow"
PACKAGE_DIR = Path(__file__).resolve().parent.parent


def module_file(module):
    """The source file of a package module (``detflow.lib.cli`` -> .../detflow/lib/cli.py), or None."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    path = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@lru_cache(maxsize=None)
def direct_imports(module):
    """(package modules, top-level names of other modules) that ``module``'s source imports."""
    tree = ast.parse(module_file(module).read_text(), filename=str(module_file(module)))
    own, others = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # ``from detflow.lib import cli`` imports the module detflow.lib.cli
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            if name.split(".")[0] == PACKAGE:
                if module_file(name) is not None:
                    own.add(name)
            elif name.split(".")[0] not in sys.stdlib_module_names:
                others.add(name.split(".")[0])
    return frozenset(own - {module}), frozenset(others)


def package_closure(module):
    """``module`` and every package module it imports, followed to the end, with the packages they sit in."""
    seen, pending = set(), [module]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        parents = [".".join(current.split(".")[:end]) for end in range(1, current.count(".") + 1)]
        pending.extend(parent for parent in parents if module_file(parent))
        pending.extend(direct_imports(current)[0])
    return seen


def module_files(module):
    """The source files that running ``module`` executes, sorted: a rule's code inputs."""
    return sorted(module_file(name) for name in package_closure(module))


def third_party_imports(module):
    """Top-level names of the non-standard-library modules that ``module`` needs, its package imports included."""
    return set().union(*(direct_imports(name)[1] for name in package_closure(module)))


def stage_modules():
    """The stages: the package's top-level modules (``python -m detflow.<stage>``); ``__main__`` is the
    ``detflow`` command, which runs them."""
    return sorted(f"{PACKAGE}.{path.stem}" for path in PACKAGE_DIR.glob("*.py")
                  if path.stem not in ("__init__", "__main__"))


def library_modules():
    """The library layer: the modules of ``detflow.lib`` and of its subpackages (``detflow.lib.data.videos``)."""
    return sorted(".".join((PACKAGE, *path.relative_to(PACKAGE_DIR).with_suffix("").parts))
                  for path in (PACKAGE_DIR / "lib").rglob("*.py") if path.stem != "__init__")


def library_package(module):
    """The library subpackage a module belongs to (``data``, ``model``, ...), or "" for the library's root."""
    parts = module.split(".")
    return parts[2] if len(parts) > 3 else ""

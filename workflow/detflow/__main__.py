"""The ``detflow`` command: what a person runs by hand, as subcommands.

Each subcommand is a stage's own command line (``detflow predict ...`` is
``python -m detflow.predict ...``); the workflow's rules call the stages directly.
"""
import importlib
import sys

from detflow import __version__
from detflow.lib.cli import run

# Subcommand: (stage module, what it does).
COMMANDS = {
    "label": ("labelimg", "label the chosen frames in labelImg (--drafts: correct the model's drafts; accept)"),
    "label-studio": ("label_studio", "Label Studio: tasks, push, pull, import, connect"),
    "label-studio-backend": ("label_studio_backend", "Label Studio's ML backend: the model's boxes on request"),
    "predict": ("predict", "run the model on videos, images, folders, globs and streams (or a dataset split)"),
    "evaluate": ("evaluate", "AP, mAP and COCO metrics of the model on a dataset split"),
    "live": ("live", "the model on a camera, video file or stream, with gesture events"),
    "export": ("export", "the model as SavedModel, ONNX and TFLite"),
    "frames": ("frames", "extract a video's frames"),
}


def usage():
    width = max(map(len, COMMANDS))
    lines = ["usage: detflow COMMAND [options]   (detflow COMMAND --help for its options)", "",
             "From raw gesture videos to a trained detector; the workflow itself runs with `snakemake`.", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {about}" for name, (_, about) in COMMANDS.items()]
    lines += ["", "  --version  the installed version"]
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return
    if argv[0] == "--version":
        print(f"detflow {__version__}")
        return
    if argv[0] not in COMMANDS:
        print(f"detflow: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        sys.exit(2)
    stage = importlib.import_module(f"detflow.{COMMANDS[argv[0]][0]}")
    sys.argv[0] = f"detflow {argv[0]}"
    run(stage.main, argv[1:])


if __name__ == "__main__":
    main()

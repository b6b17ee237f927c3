"""What every stage's command line shares: logging, the error convention and
option parsing. The one module of the library that knows argparse: the rest
takes paths and values.

Bad input raises :class:`InputError`; :func:`run` turns it into one line on
stderr naming the file and the reason, and exit status 1, never a traceback.
"""
import argparse
import logging
import sys
from dataclasses import fields
from typing import Literal, get_args, get_origin

# Options that describe a model: given, they must agree with the model's own description.
MODEL_CHECKS = (
    ("backbone", str, "the model's keras-retinanet backbone, e.g. mobilenet224_1.0"),
    ("feature_size", int, "FPN and head width"),
    ("image_min_side", int, "shorter image side the model was trained with"),
    ("image_max_side", int, "longer image side the model was trained with"),
)


class InputError(Exception):
    """Bad input from the user: a file (or config key) and what is wrong with it."""

    def __init__(self, where, reason):
        self.where = str(where)
        self.reason = reason
        super().__init__(f"{self.where}: {reason}")


def options_of(settings):
    """Config values as command-line arguments, as the rules pass them: {"every_nth": 2, "fps": None} ->
    ["--every-nth", "2", "--fps", "none"]; lists are comma-separated, booleans true or false."""
    arguments = []
    for key, value in settings.items():
        if isinstance(value, bool):
            value = str(value).lower()
        elif value is None:
            value = "none"
        elif isinstance(value, (list, tuple)):
            value = ",".join(str(item) for item in value)
        arguments += [f"--{key.replace('_', '-')}", str(value)]
    return arguments


def prog(stage):
    """A stage's name in its usage line: as the ``detflow`` command ran it, or ``python -m detflow.<stage>``."""
    return sys.argv[0] if sys.argv[0].startswith("detflow ") else f"python -m detflow.{stage}"


def parse_bool(text):
    """argparse type for explicit booleans (rules pass ``--flag true``)."""
    value = str(text).strip().lower()
    if value in ("true", "yes", "1", "on"):
        return True
    if value in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_optional(kind):
    """argparse type that reads ``none``/``null`` as None and anything else as ``kind``."""

    def parse(text):
        if str(text).strip().lower() in ("none", "null", ""):
            return None
        return kind(text)

    parse.__name__ = f"optional {kind.__name__}"
    return parse


def add_settings_options(parser, settings_class, title):
    """One required option per field of a settings dataclass (``learning_rate`` -> ``--learning-rate``), typed
    by the field: a ``Literal`` gives its choices, a bool takes true or false; help from the field's metadata."""
    group = parser.add_argument_group(title)
    for item in fields(settings_class):
        options = {"required": True, "help": item.metadata.get("help")}
        if get_origin(item.type) is Literal:
            options["choices"] = get_args(item.type)
        else:
            options["type"] = parse_bool if item.type is bool else item.type
        group.add_argument(f"--{item.name.replace('_', '-')}", **options)


def settings_from_options(settings_class, args, parser):
    """The settings dataclass of parsed options, each at least its field's ``minimum``."""
    for item in fields(settings_class):
        minimum = item.metadata.get("minimum")
        if minimum is not None and getattr(args, item.name) < minimum:
            parser.error(f"--{item.name.replace('_', '-')} must be at least {minimum}")
    return settings_class(**{item.name: getattr(args, item.name) for item in fields(settings_class)})


def add_model_options(parser, *, runtimes=None, classes_option="--classes"):
    """The options of a stage that uses a model: what it runs on, and checks of what the model is.

    The model says what it is (:mod:`detflow.lib.model.card`); an option that
    describes it is only checked against it. ``runtimes``: the runtimes the stage
    can run a model on (``--runtime``; none: the Keras model only). ``classes_option``
    names the dataset's classes.json the model must fit."""
    if runtimes:
        parser.add_argument("--runtime", choices=runtimes, default=runtimes[0],
                            help="keras: the .h5 inference model; tf, onnx, tflite: the model exported for that "
                                 "runtime by the export stage (its file or the export folder as the model)")
    parser.add_argument(classes_option, dest="dataset_classes",
                        help="classes.json of a dataset the model must have been trained for")
    parser.add_argument("--class-names", type=lambda text: text.split(","),
                        help="comma-separated class names (config's classes) the model must have, in label order")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads of the runtime (default: all)")
    checks = parser.add_argument_group("checks (the model describes itself; given, these must agree with it)")
    for option, kind, text in MODEL_CHECKS:
        checks.add_argument(f"--{option.replace('_', '-')}", type=kind, help=text)


def model_options(args):
    """add_model_options's options as the keyword arguments of detflow.lib.inference.detector.load_detector."""
    options = {"threads": args.threads, "dataset_classes": args.dataset_classes, "class_names": args.class_names,
               "checks": {option: getattr(args, option) for option, _, _ in MODEL_CHECKS}}
    if hasattr(args, "runtime"):
        options["runtime"] = args.runtime
    return options


def fill_from_config(args, config, options):
    """Options left out (None) take their value from the project's config: ``{option's dest: "section.key"}``."""
    for dest, key in options.items():
        if getattr(args, dest) is None:
            value = config
            for part in key.split("."):
                value = value[part]
            setattr(args, dest, value)
    return args


def run(main, argv=None):
    """Run a stage's ``main(argv)`` with logging set up and InputError reported cleanly."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        main(argv)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)  # once: the job's log file is this stream too
        sys.exit(1)

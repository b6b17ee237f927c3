"""From raw videos of hand gestures to a trained detector, as a Snakemake workflow.

Each stage is a module with plain functions and a small command line
(``python -m detflow.<stage>``, or ``detflow <command>`` for those a person
runs by hand); what stages share is the library, :mod:`detflow.lib`.
"""
import os

__version__ = "0.2.0"

# keras-retinanet is written for Keras 2: TensorFlow must give tf_keras as tf.keras. TensorFlow reads this
# when tf.keras is first used, so it is set here, before any module of the package can import TensorFlow.
os.environ["TF_USE_LEGACY_KERAS"] = "1"

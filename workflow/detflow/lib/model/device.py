"""Where TensorFlow runs: the first visible GPU with memory growth, else the CPU with a number of threads."""
import logging

import tensorflow as tf

log = logging.getLogger(__name__)


def setup_device(threads=None):
    """Use the first visible GPU with memory growth, else the CPU; return a one-line description.

    Must run before TensorFlow creates its first tensor. ``threads`` caps the CPU
    threads TensorFlow uses (the job's Snakemake threads).
    """
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        # Without it TensorFlow reserves all GPU memory at start-up.
        tf.config.experimental.set_memory_growth(gpu, True)
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        device = f"GPU {gpus[0].name} ({details.get('device_name', 'unknown model')}), memory growth on"
        if len(gpus) > 1:
            device += f"; {len(gpus) - 1} more GPU(s) visible but unused"
    else:
        device = f"CPU ({threads or 'all'} threads); no GPU visible"
    log.info("TensorFlow %s uses %s", tf.__version__, device)
    return device

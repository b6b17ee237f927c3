"""The weight average at epoch ends (tf.keras's optimizer EMA): validation and snapshots see the average,
training goes on from its own weights. A tiny dense model: the callbacks, not RetinaNet, are under test."""
import numpy as np
import tf_keras as keras

from detflow.lib.training.callbacks import AveragedWeights, TrainingWeightsRestored


class Probe(keras.callbacks.Callback):
    """The model's weights at each epoch's start and (between the two callbacks under test) end."""

    def __init__(self):
        super().__init__()
        self.begin, self.end = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.begin.append(self.model.get_weights())

    def on_epoch_end(self, epoch, logs=None):
        self.end.append(self.model.get_weights())


def fitted(use_ema):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.layers.Dense(1, input_shape=(2,))])
    model.compile(keras.optimizers.Adam(0.1, use_ema=use_ema, ema_momentum=0.9), "mse")
    inputs = np.random.default_rng(1).normal(size=(16, 2))
    averaged, probe = AveragedWeights(), Probe()
    model.fit(inputs, inputs @ [[2.0], [-1.0]], batch_size=4, epochs=3, shuffle=False, verbose=0,
              callbacks=[averaged, probe, TrainingWeightsRestored(averaged)])
    return model, probe


def same(first, second):
    return all(np.allclose(a, b) for a, b in zip(first, second))


def test_epoch_ends_see_the_average_and_training_continues_from_its_own_weights():
    model, probe = fitted(use_ema=True)
    plain, plain_probe = fitted(use_ema=False)
    # Training itself is the same with or without the average: each epoch starts from the training weights.
    assert all(same(a, b) for a, b in zip(probe.begin, plain_probe.begin))
    # At each epoch's end the callbacks in between see the average, not the training weights.
    assert not any(same(end, begin) for end, begin in zip(probe.end, probe.begin[1:]))
    assert all(same(end, begin) for end, begin in zip(plain_probe.end, plain_probe.begin[1:]))
    # After fit the model holds the last average (what the last snapshot saved).
    assert same(model.get_weights(), probe.end[-1])

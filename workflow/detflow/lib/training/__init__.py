"""A training run: its settings, data, model, callbacks, checkpoints, and the TensorBoard logs it leaves."""

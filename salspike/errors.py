"""Exceptions that carry a message naming the problem and its fix."""


class SalspikeError(Exception):
    """Base class: every user-facing error of salspike."""


class ConfigError(SalspikeError, ValueError):
    """A model or protocol file, or a --set override, is invalid."""


class ShapeError(SalspikeError, ValueError):
    """Arrays (weights, inputs) do not fit the circuit."""


class DatasetError(SalspikeError, FileNotFoundError):
    """A dataset is missing or malformed."""


class DivergenceError(SalspikeError, FloatingPointError):
    """A run produced NaN/inf or exploding weights; the last good state is kept on disk."""


class DeviceError(SalspikeError, RuntimeError):
    """A Brian2 device (cpp_standalone, cuda_standalone) cannot be set up or run."""

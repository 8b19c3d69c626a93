"""Errors the CLI turns into one line and a non-zero exit."""


class EdgeError(Exception):
    """Bad input from the user (model, config, camera, file): message is shown as is."""


class ModelError(EdgeError):
    """Missing, corrupt or mismatched model or sidecar."""


class ConfigError(EdgeError):
    """Unknown key, wrong type or out-of-range value in the config."""


class SourceError(EdgeError):
    """A frame source that cannot be opened."""

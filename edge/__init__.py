"""edge-emotion device runtime: camera to faces to emotions and blinks. No TensorFlow here."""

__version__ = "0.1.0"

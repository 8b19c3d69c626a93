"""edge-emotion device runtime: camera to faces to emotions and blinks. No TensorFlow here."""

import os

__version__ = "0.1.0"

# FFmpeg (inside OpenCV) logs every damaged packet of a network stream to stderr,
# which under systemd floods the journal; we report stream problems ourselves.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

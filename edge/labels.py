"""FER2013 class names in label order.

The model's sidecar carries its own copy, which the device uses; this is the default.
"""

FER2013_LABELS: tuple[str, ...] = (
    "Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral",
)

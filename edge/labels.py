"""FER2013 class names, in label order. The sidecar carries its own copy; this is the default."""

FER2013_LABELS: tuple[str, ...] = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")

"""Build side of edge-emotion: train, quantize and evaluate (needs TensorFlow)."""

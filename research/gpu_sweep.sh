#!/usr/bin/env bash
# research/train_sweep.py on a borrowed GPU machine that has JAX (or PyTorch) but no
# TensorFlow: Keras 3 and its two small dependencies travel as wheels in .whl/,
# FER2013 in .devdata/. Usage (from the repository root): research/gpu_sweep.sh BUDGET_SECONDS PACK_FOLDER
set -u
budget=${1:?budget seconds}; pack=${2:?folder for the packed runs}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site XLA_PYTHON_CLIENT_PREALLOCATE=false TF_CPP_MIN_LOG_LEVEL=2
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
probe='import numpy as np, keras
m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
m.compile("adam", "mse"); m.fit(np.ones((8, 4)), np.ones((8, 2)), verbose=0)
print("keras", keras.__version__, "on", keras.backend.backend(), "works")'
# JAX first; PyTorch if this Keras cannot train on the JAX that is there.
for backend in jax torch; do
    if KERAS_BACKEND=$backend python3 -c "$probe"; then export KERAS_BACKEND=$backend; break; fi
done
[ -n "${KERAS_BACKEND:-}" ] || { echo "no Keras backend trains here"; exit 1; }
# Selection on a validation split carved from train.npz; publictest.npz beside it is
# scored once per run as the test figure.
python3 -m research.train_sweep --data .devdata/train.npz \
    --out /tmp/sweep --pack "$pack" --budget "$budget"
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv

"""Runs an ONNX model in onnxruntime on .npy inputs and writes its outputs as .npy.

Usage: ort_run.py MODEL.onnx OUT_DIR NAME=INPUT.npy [NAME=INPUT.npy ...]
Used by the tests as the independent reference for real models.
"""
import sys

import numpy as np
import onnxruntime as ort


def main() -> None:
    model, out_dir, *specs = sys.argv[1:]
    feeds = {}
    for spec in specs:
        name, path = spec.split("=", 1)
        feeds[name] = np.load(path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    outputs = session.run(None, feeds)
    for i, value in enumerate(outputs):
        np.save(f"{out_dir}/output_{i}.npy", np.ascontiguousarray(value, dtype=np.float32))


if __name__ == "__main__":
    main()

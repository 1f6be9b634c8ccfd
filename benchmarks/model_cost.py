"""Parameters, multiply-accumulates and one CPU forward pass of each DCME preset.

Usage:
  python benchmarks/model_cost.py [--size 512x1024] [--presets paper,mobilenet_v2,tiny]
                                  [--threads 0] [--repeats 3]

MACs are counted analytically from the traced TensorFlow graph at batch 1, so they cover
every convolution wherever it sits (backbone, custom heads): per ``Conv2D`` op
``output pixels x C_out x k_h x k_w x C_in``, per ``DepthwiseConv2dNative``
``output elements x k_h x k_w``, per transposed conv (``Conv2DBackpropInput``)
``input pixels x C_in x k_h x k_w x C_out`` and per ``MatMul`` ``M x K x N``. TF on CPU
runs a dilated conv on a space-to-batch padded tensor; the count uses the logical
(cropped) output instead, which is what the network costs (and what TFLite runs).
Batch norm, ReLU, pooling and additions are not counted.

The forward pass uses random weights and a random 0..255 image (synthetic), batch 1,
through one ``tf.function``; the time printed is the median of ``--repeats`` runs after
one warm-up run. The thread count is TF's intra-op pool (0 = TF's default: all cores).
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dcme_keras.hardware import cpu_name  # noqa: E402
from dcme_keras.models.deeplab_dcme import PRESETS, build_deeplab_dcme  # noqa: E402


def _logical_output_shape(op: tf.Operation) -> tf.TensorShape:
    """Output shape of a conv op, undoing TF's space-to-batch form of dilated convs."""
    consumers = op.outputs[0].consumers()
    if consumers and consumers[0].type == "BatchToSpaceND":
        return consumers[0].outputs[0].shape
    return op.outputs[0].shape


def count_macs(model, input_shape) -> collections.Counter:
    """Multiply-accumulates of one forward pass at batch 1, by kind of op.

    Args:
      model: a Keras model taking ``[B, H, W, C]`` float32.
      input_shape: ``(H, W, C)``.

    Returns:
      Counter ``{"conv", "depthwise", "transpose_conv", "matmul"} -> MACs``.
    """
    fn = tf.function(lambda image: model(image, training=False), autograph=False)
    graph = fn.get_concrete_function(
        tf.TensorSpec((1, *input_shape), tf.float32)).graph
    macs = collections.Counter()
    for op in graph.get_operations():
        if op.type == "Conv2D":
            kh, kw, cin, _ = op.inputs[1].shape
            macs["conv"] += math.prod(_logical_output_shape(op)) * kh * kw * cin
        elif op.type == "DepthwiseConv2dNative":
            kh, kw, _, _ = op.inputs[1].shape
            macs["depthwise"] += math.prod(_logical_output_shape(op)) * kh * kw
        elif op.type == "Conv2DBackpropInput":
            kh, kw, cout, _ = op.inputs[1].shape  # filter: [k_h, k_w, C_out, C_in]
            macs["transpose_conv"] += math.prod(op.inputs[2].shape) * kh * kw * cout
        elif op.type == "MatMul":
            m, k = op.inputs[0].shape
            macs["matmul"] += m * k * op.outputs[0].shape[1]
    return macs


def time_forward(model, input_shape, repeats: int) -> float:
    """Median seconds of one batch-1 forward pass after a warm-up run."""
    fn = tf.function(lambda image: model(image, training=False), autograph=False)
    image = tf.constant(np.random.default_rng(0).uniform(
        0, 255, (1, *input_shape)).astype(np.float32))
    fn(image)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        outputs = fn(image)
        for value in outputs.values():
            value.numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="512x1024", help="HxW, multiples of 16")
    parser.add_argument("--presets", default="paper,mobilenet_v2,tiny")
    parser.add_argument("--threads", type=int, default=0,
                        help="TF intra-op threads; 0 = TF default (all cores)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.lower().split("x"))
    input_shape = (height, width, 3)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    threads = args.threads or f"TF default ({os.cpu_count()} cores visible)"
    cpu = cpu_name()
    print(f"DCME network cost at {height}x{width}, batch 1; CPU: {cpu}, threads: {threads}; "
          "random weights, synthetic random image")
    print(f"{'preset':<14}{'params':>14}{'GMACs':>10}{'conv':>9}{'dw':>7}{'deconv':>8}"
          f"{'forward s':>11}")
    for preset in args.presets.split(","):
        if preset not in PRESETS:
            parser.error(f"unknown preset {preset!r}; use some of {sorted(PRESETS)}")
        model = build_deeplab_dcme(preset, input_shape=input_shape)
        macs = count_macs(model, input_shape)
        seconds = time_forward(model, input_shape, args.repeats)
        print(f"{preset:<14}{model.count_params():>14,}{sum(macs.values()) / 1e9:>10.1f}"
              f"{macs['conv'] / 1e9:>9.1f}{macs['depthwise'] / 1e9:>7.2f}"
              f"{macs['transpose_conv'] / 1e9:>8.1f}{seconds:>11.2f}")


if __name__ == "__main__":
    main()

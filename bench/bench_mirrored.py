"""Side-by-side cost of NaN detection on a Keras fit under tf.distribute.MirroredStrategy.

    .venv/bin/python bench/bench_mirrored.py                       # mlp and cnn, 100 paired rounds
    .venv/bin/python bench/bench_mirrored.py --models mlp --rounds 20

Two logical CPU devices (the set-up the tests use), one MirroredStrategy; every model is built and
compiled in its scope. The variants and the measurement are bench_modes.py's steady-state table:
plain fit, plain again (the noise floor), nanwatch fast and exact, each with one warm model traced
before timing, in paired rounds of short fits run in shuffled order; the ratio of each variant to
plain fit's time per step after the first, median over rounds, and of process CPU time per step.
Fast mode's target is at most 1.05x of the same strategy run unwatched, read against the noise floor.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_modes  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--rounds", type=int, default=100, help="paired rounds per model")
    parser.add_argument("--steps", type=int, default=0, help="steps per fit (default: per model, 10k+1)")
    parser.add_argument("--devices", type=int, default=2, help="logical CPU devices, one replica each")
    args = parser.parse_args(argv)

    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.devices)
    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(args.devices)])
    make_model = bench_modes.make_model

    def make_mirrored(name):
        with strategy.scope():
            return make_model(name)
    bench_modes.make_model = make_mirrored   # steady_state builds its models through it

    steps_per_model = {"mlp": 101, "cnn": 31, "lstm": 41}
    variants = {"plain": bench_modes.plain, "plain (noise floor)": bench_modes.plain,
                "nanwatch_fast": bench_modes.nanwatch_mode("fast"), "nanwatch_exact": bench_modes.nanwatch_mode("exact")}
    rows = []
    for name in args.models.split(","):
        steps = args.steps or steps_per_model[name]
        runs = bench_modes.steady_state(name, variants, args.rounds, steps, 32)
        rows += bench_modes._rows(name, steps, runs, column=1)
    print(f"MirroredStrategy over {args.devices} logical CPUs, healthy training, steady state: time per step "
          f"after the first, warm models, {args.rounds} paired rounds of short fits. median/min/max: of the "
          "per-round wall-time ratios to plain fit under the same strategy; cpu: median of the per-round "
          "ratios of process CPU time per step. Noise floor: plain vs plain.")
    bench_modes._print(rows, "ms/step", 1e3)


if __name__ == "__main__":
    main()

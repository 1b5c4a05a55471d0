"""Side-by-side cost of NaN detection on a Keras fit under tf.distribute.MirroredStrategy.

    .venv/bin/python bench/bench_mirrored.py                       # mlp and cnn, 100 paired rounds
    .venv/bin/python bench/bench_mirrored.py --models mlp --rounds 20
    .venv/bin/python bench/bench_mirrored.py --models mlp --traced-step 30   # the traced step alone

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
    parser.add_argument("--traced-step", type=int, default=0, metavar="BLOCKS",
                        help="instead: nanwatch's traced train step alone, fast vs plain (no sentinel), on one "
                        "batch, in BLOCKS alternating blocks of 50 calls")
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

    if args.traced_step:
        for name in args.models.split(","):
            traced_step(strategy, name, args.traced_step)
        return

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


def traced_step(strategy, name, blocks):
    """The graph's share of fast mode's cost: the step function nanwatch traces, with the sentinel
    (fast) and without it (plain: the same capture of the gradients' squares, no cond, no check),
    called on one distributed batch; wall and process CPU time per call, median over blocks."""
    import statistics
    import time

    import tensorflow as tf
    from nanwatch.engine import keras_steps

    x, y = bench_modes.make_data(name, 8, 32)
    model = bench_modes.make_model(name)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    data = next(iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices((x, y)).batch(32))))
    fns = {flavour: keras_steps._traced(model, "train", flavour)[0] for flavour in ("plain", "fast")}
    for fn in fns.values():
        for _ in range(5):
            fn(data)
    times: dict = {flavour: [] for flavour in fns}
    for _ in range(blocks):
        for flavour, fn in fns.items():
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(50):
                out = fn(data)
            tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, out)
            times[flavour].append(((time.perf_counter() - wall) / 50, (time.process_time() - cpu) / 50))
    for flavour, rows in times.items():
        base = times["plain"]
        print(f"{name:6} traced step {flavour:6} wall {1e3 * statistics.median(r[0] for r in rows):.3f} ms "
              f"cpu {1e3 * statistics.median(r[1] for r in rows):.3f} ms  ratio to plain: wall "
              f"{statistics.median(r[0] / b[0] for r, b in zip(rows, base)):.3f}x cpu "
              f"{statistics.median(r[1] / b[1] for r, b in zip(rows, base)):.3f}x", flush=True)


if __name__ == "__main__":
    main()

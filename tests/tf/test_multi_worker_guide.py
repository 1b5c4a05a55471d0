"""TensorFlow's multi-worker custom-loop guide as its readers run it (tests/tf/multi_worker_guide.py): a CNN,
RMSprop, `distribute_datasets_from_function`, a `SparseCategoricalAccuracy` updated inside the step and
`train_step(iterator)`, on two local workers. Written from the guide, not for nanwatch: the metric's
accumulators are each worker's own, the weights and the reduced loss are shared."""

import json
import os
import sys

from tests.tf.test_multi_worker import ROOT, _cluster

SCRIPT = os.path.join(ROOT, "tests", "tf", "multi_worker_guide.py")


def _outputs(results, tmp_path):
    for code, _, log in results:
        assert code == 0, log
    return [json.loads((tmp_path / f"guide-{task}.json").read_text()) for task in range(2)]


def test_the_guides_loop_watched_is_the_unwatched_loop(tmp_path):
    workers = _outputs(_cluster([[sys.executable, SCRIPT, "healthy"]] * 2, tmp_path), tmp_path)
    for worker in workers:
        assert worker["status"] == "healthy", worker["notes"]
        assert worker["same_weights"], worker             # bit-identical to the unwatched 16 steps
        assert worker["loss"][0] == worker["loss"][1] and worker["accuracy"][0] == worker["accuracy"][1]
        own = [n for n in worker["notes"] if "are each worker's own" in n]     # the metric's accumulators
        assert own and "train_accuracy/total" in own[0] and "train_accuracy/count" in own[0], worker["notes"]


def test_a_nan_pixel_in_worker_1s_images_is_found_there_and_both_stop(tmp_path):
    workers = _outputs(_cluster([[sys.executable, SCRIPT, "nan"]] * 2, tmp_path), tmp_path)
    for worker in workers:
        report = worker["report"]
        first = report["first_nonfinite"]
        assert report["status"] == "nonfinite" and worker["steps"] == 4 and worker["finite"], worker
        assert (first["step"], first["task"], first["context"], first["phase"]) == (4, 1, "data", "input"), first
        assert first["data"]["rows"] == [44] and first["consumer"]["op_type"] == "Reshape", first
        assert report["diagnosis"][0]["cause"] == "nan_in_input"

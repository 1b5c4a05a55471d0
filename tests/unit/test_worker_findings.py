"""What one worker tells the others at a failure (engine/distributed.py): a detection as a small JSON
dict that fits the findings exchange's row, and back, keeping what the other workers' reports show."""

import json

from nanwatch.engine import distributed
from nanwatch.engine.detection import Detection
from nanwatch.engine.frames import Where


def _log_detection(**changes):
    fields = dict(context="eager", op_type="Log", op_name=None, slot=0, dtype="float32", kind=None,
                  where=Where(layer="hidden", layer_path="sequential/hidden", phase="forward",
                              source={"file": "train.py", "line": 7, "code": "y = tf.math.log(x)", "cell": None}),
                  counts={"nan": 1, "pos_inf": 0, "neg_inf": 0, "size": 16},
                  device="/job:worker/replica:0/task:1/device:CPU:0", task=1, replica=1)
    fields.update(changes)
    return Detection(**fields)


def test_a_finding_goes_through_json_with_what_the_report_shows():
    back = distributed.from_summary(json.loads(json.dumps(distributed.summary(_log_detection()))))
    assert (back.op_type, back.task, back.replica, back.device) == ("Log", 1, 1, "/job:worker/replica:0/task:1/device:CPU:0")
    assert back.where.layer == "hidden" and back.where.phase == "forward" and back.where.source["line"] == 7
    assert back.counts["nan"] == 1 and back.output is None      # the culprit array stays on its worker


def test_data_rows_go_through():
    det = _log_detection(context="data", op_type=None, where=Where(None, None, "input", None),
                         data={"rows": [4], "columns": [2], "values": ["nan"], "source": "x"})
    back = distributed.from_summary(json.loads(json.dumps(distributed.summary(det))))
    assert back.context == "data" and back.data["rows"] == [4] and back.data["columns"] == [2]


def test_a_large_finding_is_cut_to_fit_its_row_keeping_the_origin():
    big = _log_detection(inputs=[{"name": f"input:{i}", "finite": True, "min": 1.0} for i in range(200)],
                         notes=("n" * 5000,),
                         where=Where("hidden", None, "forward", {"file": "t.py", "line": 3, "code": "x" * 9000}))
    text = json.dumps(distributed.summary(big))
    assert len(json.dumps(big.inputs)) > 2048 and len(text) <= 2048
    back = distributed.from_summary(json.loads(text))
    assert (back.op_type, back.task, back.where.layer) == ("Log", 1, "hidden")

"""The diagnosis reads the engine's Evidence record (nanwatch/evidence.py) as it reads a dict of the
same fields, reads `layers_config` in the shape the engine produces ([{name, class, config}] with
Keras 3 `get_config()` dicts), analyses the training dynamics once per call, and `info_notes` gives
the data-profile notes only. No TensorFlow import."""

import json
import pathlib

import numpy as np
import pytest

import nanwatch.diagnosis.dynamics as D
from nanwatch.diagnosis import diagnose, info_notes
from nanwatch.diagnosis.data_checks import profile_array
from nanwatch.evidence import Evidence

DYN = pathlib.Path(__file__).parents[1] / "data" / "dynamics"


def dyn(name):
    return json.loads((DYN / f"{name}.json").read_text())


def initializer(class_name, **config):
    """A kernel_initializer as Keras 3's Dense.get_config() serialises it."""
    return {"module": "keras.initializers", "class_name": class_name, "config": dict(config, seed=None),
            "registered_name": None}


def layer(name, cls, **config):
    """One entry of evidence.layers_config as the engine builds it (model_facts.layers_config)."""
    return {"name": name, "class": cls, "config": dict({"name": name, "trainable": True}, **config)}


def first(op, phase, inputs, layer_name=None, step=0, pos_inf=0, dtype="float32"):
    return {"op_type": op, "phase": phase, "layer": layer_name, "step": step, "dtype": dtype,
            "counts": {"nan": 0, "pos_inf": pos_inf, "neg_inf": 0, "size": 64}, "inputs": inputs}


def inp(mn, mx, zeros=0, dtype="float32"):
    return {"finite": True, "min": mn, "max": mx, "zeros": zeros, "nan": 0, "pos_inf": 0, "neg_inf": 0,
            "size": 64, "dtype": dtype}


def unscaled_X():
    rng = np.random.default_rng(16)
    return np.column_stack([rng.uniform(500, 5000, 200), rng.integers(1, 7, 200)]).astype("float32")


def evidences():
    rec = dyn("lr_sgd10_mlp")
    yield "log_of_zero", {"call": "fit", "first_nonfinite": first("Log", "loss", [inp(0.0, 1.0, zeros=3)])}
    yield "lr_too_high", {"call": "fit", "steps": rec["steps"], "layers": rec["layers"], "optimizer": rec["optimizer"],
                          "first_nonfinite": first("MatMul", "forward", [inp(0.0, 3e18)], "dense_1", step=9,
                                                   pos_inf=32)}
    yield "unscaled_warning", {"call": "fit", "data": [profile_array("X", unscaled_X(), "features")],
                               "layers_config": [layer("dense", "Dense")]}


@pytest.mark.parametrize("name,ev", list(evidences()), ids=[n for n, _ in evidences()])
def test_a_record_and_a_dict_of_its_fields_give_the_same_answers(name, ev):
    record = Evidence.from_mapping(ev)
    assert diagnose(record) == diagnose(ev) and diagnose(ev) != ([], [])
    assert info_notes(record) == info_notes(ev)


def test_first_layer_from_the_engines_layers_config():
    data = [profile_array("X", unscaled_X(), "features")]
    dense_first = [layer("input_layer", "InputLayer"), layer("dense", "Dense", units=16)]
    normalization_first = [layer("input_layer", "InputLayer"), layer("normalization", "Normalization", axis=[-1]),
                           layer("dense", "Dense", units=16)]
    causes = [w["cause"] for w in diagnose({"call": "fit", "data": data, "layers_config": dense_first})[1]]
    assert causes == ["unscaled_input"]
    assert diagnose({"call": "fit", "data": data, "layers_config": normalization_first}) == ([], [])


def test_float16_fix_names_the_layers_class():
    ev = Evidence(dtype_policy="mixed_float16", layers_config=[layer("conv", "Conv2D", filters=8)],
                  first_nonfinite=first("Conv2D", "forward", [inp(0.0, 250.0, dtype="float16")], "conv",
                                        pos_inf=8, dtype="float16"))
    d, _ = diagnose(ev)
    assert d[0]["cause"] == "float16_overflow"
    assert 'keras.layers.Conv2D(..., name="conv", dtype="float32")' in d[0]["fix"]


def test_kernel_initializers_from_the_engines_layers_config():
    big = [layer("dense", "Dense", kernel_initializer=initializer("RandomNormal", mean=0.0, stddev=50.0))]
    default = [layer("dense", "Dense", kernel_initializer=initializer("GlorotUniform"))]
    d, w = diagnose(Evidence(call="fit", layers_config=big))
    assert d == [] and [x["cause"] for x in w] == ["large_initial_weights"]
    assert "'dense' uses kernel_initializer RandomNormal(mean=0.0, stddev=50.0)" in w[0]["evidence"]
    assert diagnose(Evidence(call="fit", layers_config=default)) == ([], [])


def test_info_notes_are_the_data_profiles_notes_only():
    imgs = np.random.default_rng(0).integers(0, 256, (64, 12, 12, 3), dtype="uint8")
    ev = Evidence(call="fit", data=[profile_array("X", imgs, "features")], dtype_policy="mixed_float16",
                  fp16_skipped_steps=3)
    notes = info_notes(ev)
    assert any("Rescaling" in n for n in notes)
    assert not any("skipped" in n for n in notes)  # the session writes the LossScaleOptimizer line


@pytest.mark.parametrize("with_nan", [True, False])
def test_the_dynamics_are_analysed_once_per_diagnose(monkeypatch, with_nan):
    rec = dyn("lr_sgd10_mlp")
    ev = {"call": "fit", "steps": rec["steps"][:4], "optimizer": rec["optimizer"],
          "layers": [dict(entry, history=entry["history"][:4]) for entry in rec["layers"]]}
    if with_nan:
        ev = {"call": "fit", "steps": rec["steps"], "layers": rec["layers"], "optimizer": rec["optimizer"],
              "first_nonfinite": first("MatMul", "forward", [inp(0.0, 3e18)], "dense_1", step=9, pos_inf=32)}
    calls = []
    analyze = D.analyze
    monkeypatch.setattr(D, "analyze", lambda *a, **k: calls.append(1) or analyze(*a, **k))
    d, w = diagnose(ev)
    assert "learning_rate_too_high" in [x["cause"] for x in d + w]
    assert len(calls) == 1

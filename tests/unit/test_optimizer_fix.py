"""The fixed optimizer keeps what the user chose (momentum, nesterov, weight decay, epsilon, clipping), and
SGD's rate is judged with its momentum counted once a run has diverged."""

from nanwatch.diagnosis import dynamics as D
from nanwatch.diagnosis import optimizer_fix as F


def test_fix_keeps_momentum_nesterov_weight_decay_and_a_custom_epsilon():
    sgd = {"class": "SGD", "learning_rate": 0.2, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4}
    assert F.optimizer_code(sgd, 0.02) == ("keras.optimizers.SGD(learning_rate=0.02, momentum=0.9, nesterov=True, "
                                           "weight_decay=0.0001, clipnorm=1.0)")
    adam = {"class": "Adam", "learning_rate": 0.01, "epsilon": 1e-4, "momentum": None}
    assert F.optimizer_code(adam, 0.001, clip=False) == "keras.optimizers.Adam(learning_rate=0.001, epsilon=0.0001)"


def test_default_or_zero_epsilon_is_not_written():
    """Keras's default need not be spelled out, and epsilon 0 is a cause of its own: the fix drops it."""
    for eps in (1e-7, 0.0):
        assert "epsilon" not in F.optimizer_code({"class": "Adam", "epsilon": eps}, 0.001)


def test_the_users_clip_is_kept_and_not_doubled():
    opt = {"class": "SGD", "learning_rate": 1.0, "global_clipnorm": 5.0, "clipnorm": None}
    assert F.optimizer_code(opt, 0.1) == "keras.optimizers.SGD(learning_rate=0.1, global_clipnorm=5.0)"
    assert F.optimizer_code({"class": "SGD"}, 0.1) == "keras.optimizers.SGD(learning_rate=0.1, clipnorm=1.0)"


def test_momentum_counts_in_the_effective_rate():
    plain = {"class": "SGD", "learning_rate": 0.1}
    heavy = dict(plain, momentum=0.9)
    assert F.lr_level(heavy) == 0                       # a healthy-run judgement ignores momentum
    assert F.lr_level(heavy, effective=True) == 2       # lr / (1 - m) = 1.0: far above SGD's usual range
    assert F.lr_level(plain, effective=True) == 0
    assert "a rate of 1" in F.effective_rate_text(heavy, 0.1)
    assert F.effective_rate_text(plain, 0.1) == "" and F.effective_rate_text({"class": "Adam", "momentum": 0.9}, 0.1) == ""


def test_exploding_fix_for_a_clipping_optimizer_lowers_the_rate():
    a = {"weight_jump": 1.0, "lr_level": 0, "update_ratio0": None, "lr_growth": None, "top_layer": "rnn",
         "top_layer_growth": 50.0, "top_layer_recurrent": True, "sudden": False, "family": "sgd",
         "grad_baseline": 1.0, "grad_peak": 1e9, "grad_peak_step": 9, "loss_baseline": 1.0, "loss_peak": 1e6,
         "nonfinite_step": 10, "lr_used": 0.01}
    clipped = {"class": "SGD", "learning_rate": 0.01, "clipnorm": 1.0}
    top = D._classify(a, clipped, post_nan=True)[0]
    assert top["cause"] == "exploding_gradients"
    assert "clips already (clipnorm=1.0)" in top["fix"] and "learning_rate=0.001" in top["fix"]
    unclipped = D._classify(a, {"class": "SGD", "learning_rate": 0.01}, post_nan=True)[0]
    assert "Clip the gradients, keep the learning rate" in unclipped["fix"]

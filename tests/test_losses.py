"""Tests for dcme_keras.losses: hand-made values, gradients, fit steps, serialization."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import expit, logit

from dcme_keras.errors import UserInputError
from dcme_keras.losses import (
    AverageDistanceLoss,
    BCEIoULoss,
    DCMELoss,
    SoftIoULoss,
    average_distance,
    soft_iou,
    translated_logistic,
)


def _f(x, amplitude):
    """Paper 000 eq. 6 in float64, first form (the library uses the tanh form)."""
    return amplitude * (expit(x) - 0.5)


def _grad(loss, y_true, y_pred, sample_weight=None):
    """Loss value and d loss / d y_pred, both as NumPy."""
    y_pred = tf.constant(y_pred, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(y_pred)
        value = loss(y_true, y_pred, sample_weight)
    return value.numpy(), tape.gradient(value, y_pred).numpy()


# ---------------------------------------------------------------------------------------
# DCME loss: values and gradients
# ---------------------------------------------------------------------------------------


def test_translated_logistic_matches_eq6():
    x = np.array([-1e3, -20.0, -3.0, -0.5, 0.0, 1e-4, 0.5, 3.0, 20.0, 1e3])
    for amplitude in (1.0, 4.0, 10.0):
        got = translated_logistic(tf.constant(x, tf.float32), amplitude).numpy()
        np.testing.assert_allclose(got, _f(x, amplitude), rtol=1e-6, atol=1e-7)
    # Slope A/4 at 0, bound A/2.
    assert translated_logistic(tf.constant(1e-4), 4.0).numpy() == pytest.approx(1e-4, rel=1e-6)
    assert translated_logistic(tf.constant(1e3), 4.0).numpy() == 2.0


def test_dcme_loss_hand_values():
    # One image, 1x2 pixels, channels (dy, dx): errors 1, 2 | 3, 4, so sum(err^2) = 30.
    y_true = np.zeros((1, 1, 2, 2), np.float32)
    y_pred = np.array([[[[1, 2], [3, 4]]]], np.float32)
    loss = DCMELoss()
    assert loss(y_true, y_pred).numpy() == pytest.approx(30 / (2 * 4))  # N = 2*1*1*2
    # Ignoring the second pixel: sum(w err^2) = 5, N = 2 * sum(w) = 2.
    for weight in ([[[1, 0]]], [[[[1], [0]]]]):
        assert loss(y_true, y_pred, np.array(weight, np.float32)).numpy() == pytest.approx(1.25)
    # A per-sample weight spreads over the sample's pixels and leaves N = 2*n*r*c.
    assert loss(y_true, y_pred, np.array([1.0])).numpy() == pytest.approx(3.75)
    # Nothing to learn from: 0, not NaN.
    assert loss(y_true, y_pred, np.zeros((1, 1, 2))).numpy() == 0.0
    per_pixel = DCMELoss(reduction="none")(y_true, y_pred).numpy()
    np.testing.assert_allclose(per_pixel, [[[5 / 4, 25 / 4]]])


@pytest.mark.parametrize("amplitude", [1.0, 4.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_dcme_gradient_is_clipped_error_over_n(rng, amplitude, weighted):
    """(a) d loss / d y_pred == w * f(err) / N elementwise, N = 2 * sum(w)."""
    y_true = rng.normal(0, 5, (2, 3, 4, 2)).astype(np.float32)
    y_pred = (y_true + rng.normal(0, 4, y_true.shape)).astype(np.float32)
    weight = (rng.random((2, 3, 4)) > 0.3).astype(np.float32) if weighted else np.ones((2, 3, 4))
    value, grad = _grad(DCMELoss(amplitude), y_true, y_pred, weight if weighted else None)

    err = y_pred.astype(np.float64) - y_true
    n = 2 * weight.sum()
    expected = weight[..., None] * _f(err, amplitude) / n
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-9)
    # The value stays the full (weighted) MSE, unclipped.
    assert value == pytest.approx((weight[..., None] * err**2).sum() / (2 * n), rel=1e-6)


def test_dcme_gradient_equals_mse_for_tiny_errors(rng):
    """(b) With A = 4 the slope is 1, so tiny errors get the plain MSE gradient err / N."""
    y_true = rng.normal(0, 5, (2, 4, 4, 2)).astype(np.float32)
    y_pred = (y_true + rng.uniform(-1e-3, 1e-3, y_true.shape)).astype(np.float32)
    mse = keras.losses.MeanSquaredError()  # mean(err^2): twice ours, same N
    ours_value, ours_grad = _grad(DCMELoss(4.0), y_true, y_pred)
    mse_value, mse_grad = _grad(mse, y_true, y_pred)
    assert ours_value == pytest.approx(0.5 * mse_value, rel=1e-5)
    np.testing.assert_allclose(ours_grad, 0.5 * mse_grad, rtol=1e-4, atol=1e-12)


def test_dcme_huge_errors_full_value_clipped_gradient():
    """(f) Value is the full MSE, gradient is bounded by A/2/N."""
    y_true = np.zeros((1, 2, 2, 2), np.float32)
    y_pred = np.array([[[[1e3, -1e3], [500, -2e3]], [[1e3, 1e3], [-1e3, 300]]]], np.float32)
    value, grad = _grad(DCMELoss(4.0), y_true, y_pred)
    n = 8
    assert value == pytest.approx((y_pred.astype(np.float64) ** 2).sum() / (2 * n), rel=1e-6)
    np.testing.assert_allclose(grad, np.sign(y_pred) * 2.0 / n, rtol=1e-6)


def test_dcme_rejects_bad_arguments():
    with pytest.raises(UserInputError, match="amplitude"):
        DCMELoss(amplitude=0.0)
    with pytest.raises(UserInputError, match="sample_weight"):
        DCMELoss()(np.zeros((1, 2, 2, 2)), np.zeros((1, 2, 2, 2)), np.ones((1, 2)))


# ---------------------------------------------------------------------------------------
# DCME loss under model.fit
# ---------------------------------------------------------------------------------------

_B, _H, _W, _CIN = 2, 4, 4, 3


def _linear_head(kernel, bias):
    """A 1x1 Conv2D: y_pred[b, h, w] = x[b, h, w] @ kernel + bias, two output channels."""
    inputs = keras.Input((_H, _W, _CIN))
    conv = keras.layers.Conv2D(2, 1, name="head")
    model = keras.Model(inputs, conv(inputs))
    conv.set_weights([kernel[None, None].astype(np.float32), bias.astype(np.float32)])
    return model


def _fit_one_step(model, x, y, weight, lr, jit_compile=False):
    """One SGD step on the whole batch; returns the reported loss and the new (kernel, bias)."""
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=lr),
        loss=DCMELoss(4.0),
        jit_compile=jit_compile,
    )
    history = model.fit(
        x, y, sample_weight=weight, batch_size=_B, epochs=1, shuffle=False, verbose=0
    )
    kernel, bias = model.get_layer("head").get_weights()
    return history.history["loss"][0], kernel[0, 0], bias


def _fit_data(rng):
    x = rng.uniform(-1, 1, (_B, _H, _W, _CIN)).astype(np.float32)
    # Targets far enough off that many errors sit in the logistic's saturated tails.
    y = rng.normal(0, 6, (_B, _H, _W, 2)).astype(np.float32)
    kernel = rng.normal(0, 1, (_CIN, 2))
    bias = np.array([0.5, -0.25])
    return x, y, kernel, bias


@pytest.mark.parametrize("jit_compile, weighted", [(False, False), (False, True), (True, True)])
def test_dcme_sgd_step_under_fit_follows_formula(rng, jit_compile, weighted):
    """(c, d) One SGD step moves the weights by -lr * dL/dW with dL/dy_pred = w f(err) / N."""
    x, y, kernel, bias = _fit_data(rng)
    weight = (rng.random((_B, _H, _W)) > 0.25).astype(np.float32) if weighted else None
    lr = 0.5
    loss, new_kernel, new_bias = _fit_one_step(
        _linear_head(kernel, bias), x, y, weight, lr, jit_compile
    )

    w = np.ones((_B, _H, _W)) if weight is None else weight.astype(np.float64)
    err = x.astype(np.float64) @ kernel + bias - y  # [B, H, W, 2]
    n = 2 * w.sum()
    d_pred = w[..., None] * _f(err, 4.0) / n
    expected_kernel = kernel - lr * np.einsum("bhwi,bhwo->io", x, d_pred)
    expected_bias = bias - lr * d_pred.sum(axis=(0, 1, 2))
    np.testing.assert_allclose(new_kernel, expected_kernel, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_bias, expected_bias, rtol=1e-5, atol=1e-6)
    # The reported loss is the full MSE before the step, not the clipped one.
    assert loss == pytest.approx((w[..., None] * err**2).sum() / (2 * n), rel=1e-5)
    # The plain MSE step would differ: the test sees the clipping.
    mse_kernel = kernel - lr * np.einsum("bhwi,bhwo->io", x, w[..., None] * err / n)
    assert not np.allclose(expected_kernel, mse_kernel, rtol=1e-2)


def test_dcme_fit_under_mixed_float16_is_not_saturated(rng):
    """(e) Under mixed_float16 (loss scale 32768) the step matches the float32 step."""
    x, y, kernel, bias = _fit_data(rng)
    lr = 0.5
    _, ref_kernel, ref_bias = _fit_one_step(_linear_head(kernel, bias), x, y, None, lr)

    previous = keras.mixed_precision.global_policy()
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        model = _linear_head(kernel, bias)
        assert model.output.dtype == "float16"
        loss, kernel16, bias16 = _fit_one_step(model, x, y, None, lr)
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    finally:
        keras.mixed_precision.set_global_policy(previous)

    assert np.isfinite(loss)
    ref_step = np.concatenate([(ref_kernel - kernel).ravel(), ref_bias - bias])
    step16 = np.concatenate([(kernel16 - kernel).ravel(), bias16 - bias])
    cosine = step16 @ ref_step / (np.linalg.norm(step16) * np.linalg.norm(ref_step))
    assert cosine > 0.999
    assert np.linalg.norm(step16) == pytest.approx(np.linalg.norm(ref_step), rel=1e-2)


# ---------------------------------------------------------------------------------------
# Mask losses: hand-made 4x4 cases
# ---------------------------------------------------------------------------------------

_SQUARE_2X2 = [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
_RECT_2X3 = [[1, 1, 1, 0], [1, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
_SQUARE_3X3 = [[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 0], [0, 0, 0, 0]]
_SQUARE_3X3_RIGHT = [[0, 1, 1, 1], [0, 1, 1, 1], [0, 1, 1, 1], [0, 0, 0, 0]]
_THREE_PIXELS = [[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
_EMPTY = [[0] * 4] * 4
_HALF = [[0.5] * 4] * 4

# (ground truth, predicted probabilities, Ad, 1 - IoU); Ad = (U - I) / sqrt(max(A_gt, 1)).
MASK_CASES = {
    "over by a column": (_SQUARE_2X2, _RECT_2X3, (6 - 4) / 2, 1 - 4 / 6),
    "perfect": (_SQUARE_2X2, _SQUARE_2X2, 0.0, 0.0),
    "missed": (_SQUARE_2X2, _EMPTY, (4 - 0) / 2, 1.0),
    "empty ground truth": (_EMPTY, _THREE_PIXELS, (3 - 0) / 1, 1.0),
    "both empty": (_EMPTY, _EMPTY, 0.0, 0.0),
    "shifted 3x3": (_SQUARE_3X3, _SQUARE_3X3_RIGHT, (12 - 6) / 3, 1 - 6 / 12),
    # I = 4 * 0.5 = 2, U = 4 + 8 - 2 = 10.
    "half everywhere": (_SQUARE_2X2, _HALF, (10 - 2) / 2, 1 - 2 / 10),
}


def _mask(rows):
    return np.array(rows, np.float32)[None, :, :, None]  # [1, 4, 4, 1]


def _logits(prob):
    """Logits of probabilities, with 0 and 1 as -30 and 30 (sigmoid(30) == 1 in float32)."""
    return np.clip(logit(prob), -30.0, 30.0).astype(np.float32)


@pytest.mark.parametrize("case", MASK_CASES.values(), ids=MASK_CASES.keys())
def test_mask_losses_hand_values(case):
    gt, prob, expected_ad, expected_iou_loss = case
    gt, prob = _mask(gt), _mask(prob)
    for from_logits, y_pred in ((False, prob), (True, _logits(prob))):
        ad = AverageDistanceLoss(from_logits=from_logits)(gt, y_pred).numpy()
        iou_loss = SoftIoULoss(from_logits=from_logits)(gt, y_pred).numpy()
        assert ad == pytest.approx(expected_ad, abs=1e-5)
        assert iou_loss == pytest.approx(expected_iou_loss, abs=1e-5)


def test_mask_losses_average_over_batch_and_accept_rank3_labels():
    cases = list(MASK_CASES.values())
    gt = np.concatenate([_mask(c[0]) for c in cases])
    prob = np.concatenate([_mask(c[1]) for c in cases])
    ad = AverageDistanceLoss(from_logits=False)
    iou = SoftIoULoss(from_logits=False)
    assert ad(gt, prob).numpy() == pytest.approx(np.mean([c[2] for c in cases]), abs=1e-5)
    assert iou(gt, prob).numpy() == pytest.approx(np.mean([c[3] for c in cases]), abs=1e-5)
    # [B, H, W] labels against [B, H, W, 1] outputs give the same numbers.
    assert ad(gt[..., 0], prob).numpy() == pytest.approx(ad(gt, prob).numpy())
    assert iou(gt[..., 0], prob).numpy() == pytest.approx(iou(gt, prob).numpy())


def test_bce_iou_hand_values():
    gt = _mask(_SQUARE_2X2)
    logits = np.zeros_like(gt)  # p = 0.5: BCE = ln 2 per pixel, IoU = 2 / 10
    assert BCEIoULoss()(gt, logits).numpy() == pytest.approx(np.log(2) + 0.8, rel=1e-6)
    weighted = BCEIoULoss(bce_weight=0.5, iou_weight=2.0)(gt, logits).numpy()
    assert weighted == pytest.approx(0.5 * np.log(2) + 1.6, rel=1e-6)
    probs = BCEIoULoss(from_logits=False)(gt, np.full_like(gt, 0.5)).numpy()
    assert probs == pytest.approx(np.log(2) + 0.8, rel=1e-6)


def test_mask_losses_match_numpy_on_random_soft_masks(rng):
    gt = (rng.random((3, 8, 8, 1)) > 0.6).astype(np.float32)
    gt[1] = 0  # one empty ground truth
    logits = rng.normal(0, 3, gt.shape).astype(np.float32)
    p = expit(logits.astype(np.float64))
    inter = (gt * p).sum(axis=(1, 2, 3))
    union = (gt + p - gt * p).sum(axis=(1, 2, 3))
    area = gt.sum(axis=(1, 2, 3))
    ad = (union - inter) / np.sqrt(np.maximum(area, 1.0))
    iou = (inter + 1e-6) / (union + 1e-6)
    bce = -(gt * np.log(p) + (1 - gt) * np.log(1 - p)).mean(axis=(1, 2, 3))

    gt_t, p_t = tf.constant(gt), tf.constant(p, tf.float32)
    np.testing.assert_allclose(average_distance(gt_t, p_t).numpy(), ad, rtol=1e-5)
    np.testing.assert_allclose(soft_iou(gt_t, p_t).numpy(), iou, rtol=1e-5)
    assert AverageDistanceLoss()(gt, logits).numpy() == pytest.approx(ad.mean(), rel=1e-5)
    assert SoftIoULoss()(gt, logits).numpy() == pytest.approx((1 - iou).mean(), rel=1e-5)
    combined = BCEIoULoss(bce_weight=0.7, iou_weight=1.3)(gt, logits).numpy()
    assert combined == pytest.approx((0.7 * bce + 1.3 * (1 - iou)).mean(), rel=1e-5)


@pytest.mark.parametrize(
    "loss", [AverageDistanceLoss(), SoftIoULoss(), BCEIoULoss()], ids=lambda loss: loss.name
)
def test_mask_loss_gradients_finite_and_pointing_the_right_way(loss):
    gt = np.concatenate([_mask(_SQUARE_2X2), _mask(_EMPTY)])
    logits = np.zeros_like(gt)
    logits[0, 0, 3, 0] = 100.0  # saturated false positive
    logits[0, 0, 0, 0] = -100.0  # saturated false negative
    logits[1] = -100.0  # empty prediction on empty ground truth
    _, grad = _grad(loss, gt, logits)
    assert np.isfinite(grad).all()
    # Raising a background logit or lowering a foreground one must cost (p = 0.5 pixels).
    assert grad[0, 3, 3, 0] > 0
    assert grad[0, 1, 1, 0] < 0


def test_mask_losses_compute_in_float32_for_float16_logits(rng):
    gt = (rng.random((2, 8, 8, 1)) > 0.5).astype(np.float32)
    logits = rng.normal(0, 2, gt.shape).astype(np.float16)
    for loss in (AverageDistanceLoss(), SoftIoULoss(), BCEIoULoss(), DCMELoss()):
        value16 = loss(gt, tf.constant(logits))
        assert value16.dtype == tf.float32
        value32 = loss(gt, logits.astype(np.float32))
        assert value16.numpy() == pytest.approx(value32.numpy(), rel=1e-6)


def test_mask_losses_reject_bad_arguments():
    with pytest.raises(UserInputError, match="epsilon"):
        AverageDistanceLoss(epsilon=0.0)
    with pytest.raises(UserInputError, match="epsilon"):
        SoftIoULoss(epsilon=-1.0)
    with pytest.raises(UserInputError, match="bce_weight"):
        BCEIoULoss(bce_weight=-1.0)


# ---------------------------------------------------------------------------------------
# Serialization
# ---------------------------------------------------------------------------------------

CONFIGURED = [
    DCMELoss(amplitude=2.5, name="dcme_a"),
    AverageDistanceLoss(from_logits=False, epsilon=4.0, name="ad_a"),
    SoftIoULoss(from_logits=False, epsilon=1e-3, name="iou_a"),
    BCEIoULoss(bce_weight=0.3, iou_weight=0.7, from_logits=False, epsilon=1e-4, name="bce_a"),
]


@pytest.mark.parametrize("loss", CONFIGURED, ids=lambda loss: loss.name)
def test_config_and_serialization_round_trip(loss):
    config = loss.get_config()
    assert type(loss).from_config(config).get_config() == config
    serialized = keras.saving.serialize_keras_object(loss)
    assert serialized["registered_name"] == f"dcme_keras>{type(loss).__name__}"
    restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is type(loss)
    assert restored.get_config() == config


def test_model_with_losses_saves_and_reloads_compiled(rng, tmp_path):
    inputs = keras.Input((8, 8, 3))
    outputs = {
        "dcme": keras.layers.Conv2D(2, 1, name="dcme")(inputs),
        "ad": keras.layers.Conv2D(1, 1, name="ad")(inputs),
        "iou": keras.layers.Conv2D(1, 1, name="iou")(inputs),
        "bce": keras.layers.Conv2D(1, 1, name="bce")(inputs),
    }
    model = keras.Model(inputs, outputs)
    losses = {
        "dcme": DCMELoss(amplitude=3.0),
        "ad": AverageDistanceLoss(epsilon=2.0),
        "iou": SoftIoULoss(epsilon=1e-3),
        "bce": BCEIoULoss(bce_weight=0.5, iou_weight=2.0),
    }
    model.compile(optimizer="sgd", loss=losses)
    x = rng.uniform(0, 1, (2, 8, 8, 3)).astype(np.float32)
    mask = (rng.random((2, 8, 8, 1)) > 0.5).astype(np.float32)
    dcme = rng.normal(0, 3, (2, 8, 8, 2)).astype(np.float32)
    y = {"dcme": dcme, "ad": mask, "iou": mask, "bce": mask}
    before = model.evaluate(x, y, verbose=0, return_dict=True)

    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, compile=True)
    for key, loss in losses.items():
        assert type(reloaded.loss[key]) is type(loss)
        assert reloaded.loss[key].get_config() == loss.get_config()
    after = reloaded.evaluate(x, y, verbose=0, return_dict=True)
    assert after == pytest.approx(before, rel=1e-6)

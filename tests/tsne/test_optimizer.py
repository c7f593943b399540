"""Gradient descent: gains, momentum, stopping rules and callbacks."""

import weakref

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from fasttsne.tsne import _optimizer
from fasttsne.tsne._optimizer import GradientDescent
from tests._oracles import descent_step


def _quadratic(target):
    """Objective 0.5 |Y - target|^2 with its gradient, as the optimiser expects."""

    def objective(Y, compute_error):
        diff = Y - target
        kl = 0.5 * float(np.sum(diff**2)) if compute_error else None
        return kl, diff

    return objective


def test_converges_on_a_quadratic(rng):
    target = rng.normal(size=(20, 2))
    Y = np.zeros((20, 2))
    optimizer = GradientDescent(0.1, center=False, max_step_norm=None)
    kl, _, reason = optimizer.run(Y, _quadratic(target), n_iter=300, momentum=0.5)
    assert reason in {"max_iter", "converged"}
    assert kl < 1e-8
    assert_allclose(Y, target, atol=1e-4)


def test_gains_grow_while_gradient_keeps_sign_and_shrink_when_it_turns():
    optimizer = GradientDescent(1.0, center=False, max_step_norm=None, min_gain=0.01)
    Y = np.zeros((1, 2))
    # No previous update: both gains shrink to 0.8 and the update is -0.8.
    optimizer.step(Y, np.array([[1.0, 1.0]]), momentum=0.0)
    assert_allclose(optimizer.gains, [[0.8, 0.8]])
    # Axis 0 keeps descending the same way (grad * update < 0): gain + 0.2;
    # axis 1's gradient turned round: gain * 0.8.
    optimizer.step(Y, np.array([[1.0, -1.0]]), momentum=0.0)
    assert_allclose(optimizer.gains, [[1.0, 0.64]])


def test_step_norm_is_capped():
    optimizer = GradientDescent(10.0, center=False, max_step_norm=1.0)
    Y = np.zeros((2, 2))
    optimizer.step(Y, np.array([[3.0, 4.0], [0.0, 0.01]]), momentum=0.0)
    assert_allclose(np.linalg.norm(Y[0]), 1.0)
    assert_allclose(Y[1], [0.0, -0.08])  # lr 10 * gain 0.8 * 0.01


def test_centering_keeps_mean_at_zero(rng):
    Y = rng.normal(size=(10, 2)) + 5
    optimizer = GradientDescent(0.1)
    optimizer.step(Y, rng.normal(size=(10, 2)), momentum=0.5)
    assert_allclose(Y.mean(axis=0), 0, atol=1e-12)


def test_callback_can_stop_and_sees_iterations(rng):
    seen = []

    def callback(iteration, kl, Y):
        seen.append((iteration, kl, Y.shape))
        return iteration >= 20

    optimizer = GradientDescent(0.1, n_iter_check=10, callbacks=[callback])
    Y = np.zeros((5, 2))
    _, n_done, reason = optimizer.run(
        Y, _quadratic(rng.normal(size=(5, 2))), n_iter=100, momentum=0.5
    )
    assert (n_done, reason) == (20, "callback")
    assert [s[0] for s in seen] == [10, 20]
    assert all(s[2] == (5, 2) for s in seen)


def test_stops_without_progress():
    # A constant error never improves after the first check.
    def objective(Y, compute_error):
        return (1.0 if compute_error else None), np.full_like(Y, 1e-3)

    optimizer = GradientDescent(0.1, n_iter_check=10)
    _, n_done, reason = optimizer.run(
        np.zeros((3, 2)),
        objective,
        n_iter=500,
        momentum=0.5,
        n_iter_without_progress=30,
    )
    # Best at iteration 10; 50 - 10 > 30 at the 5th check.
    assert (n_done, reason) == (50, "no_progress")


def test_stops_on_small_gradient():
    def objective(Y, compute_error):
        return (0.0 if compute_error else None), np.zeros_like(Y)

    optimizer = GradientDescent(0.1, n_iter_check=5)
    _, n_done, reason = optimizer.run(
        np.zeros((3, 2)), objective, n_iter=100, momentum=0.5, min_grad_norm=1e-7
    )
    assert (n_done, reason) == (5, "converged")


def test_state_persists_across_phases(rng):
    """The main phase starts from the early phase's gains and velocities."""
    target = rng.normal(size=(4, 2))
    carried = GradientDescent(0.1, center=False)
    Y = np.zeros((4, 2))
    carried.run(Y, _quadratic(target), n_iter=3, momentum=0.5)
    Y_fresh = Y.copy()
    carried.run(Y, _quadratic(target), n_iter=1, momentum=0.8, start_iter=3)
    GradientDescent(0.1, center=False).run(
        Y_fresh, _quadratic(target), n_iter=1, momentum=0.8
    )
    assert not np.allclose(Y, Y_fresh)


def test_error_is_that_of_the_returned_embedding(rng):
    """The error returned and passed to callbacks is that of Y after the step."""
    target = rng.normal(size=(6, 2))
    objective = _quadratic(target)
    seen = []

    def callback(iteration, kl, Y):
        seen.append((iteration, kl, 0.5 * float(np.sum((Y - target) ** 2))))

    optimizer = GradientDescent(
        0.05, center=False, n_iter_check=4, callbacks=[callback]
    )
    Y = np.zeros((6, 2))
    kl, n_done, _ = optimizer.run(Y, objective, n_iter=10, momentum=0.5)
    assert n_done == 10
    assert [s[0] for s in seen] == [4, 8, 10]
    for _, reported, actual in seen:
        assert_allclose(reported, actual, rtol=1e-12)
    assert_allclose(kl, 0.5 * np.sum((Y - target) ** 2), rtol=1e-12)


def _step_inputs(rng, shape, dtype, non_finite):
    """Embedding, update, gains and 12 gradients over many orders of magnitude.

    Every third gradient turns half the rows round, so that gains grow,
    shrink and reach ``min_gain``. With ``non_finite``, some gradients,
    updates and gains are NaN or infinite.
    """
    scale = np.exp(rng.normal(size=(shape[0], 1)) * 3.0)
    Y = (rng.normal(size=shape) * scale).astype(dtype)
    update = (rng.normal(size=shape) * scale).astype(dtype)
    gains = rng.uniform(0.01, 3.0, size=shape).astype(dtype)
    grads = []
    for it in range(12):
        grad = (rng.normal(size=shape) * scale).astype(dtype)
        if it % 3 == 2:
            grad[: shape[0] // 2] *= -1.0
        grads.append(grad)
    if non_finite:
        specials = np.array([np.nan, np.inf, -np.inf])
        for array in (update, gains, *grads[::4]):
            rows = rng.choice(shape[0], size=max(1, shape[0] // 50), replace=False)
            array[rows, rng.integers(shape[1], size=rows.size)] = rng.choice(
                specials, size=rows.size
            )
    return Y, update, gains, grads


def _optimizer_at(update, gains, max_step_norm, center):
    optimizer = GradientDescent(
        np.float64(833.3), min_gain=0.05, max_step_norm=max_step_norm, center=center
    )
    optimizer.update, optimizer.gains = update.copy(), gains.copy()
    return optimizer


def _assert_same_bits(actual, expected):
    """Bitwise equality, NaN payloads and signed zeros included."""
    assert actual.dtype == expected.dtype
    assert_array_equal(actual.view(np.uint64), expected.view(np.uint64))


@pytest.mark.parametrize("non_finite", [False, True])
@pytest.mark.parametrize("max_step_norm", [5.0, None, 1e-3, 0.0])
@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("n_samples", [5003, 1])
def test_fused_step_matches_array_expressions_bitwise(
    rng, monkeypatch, non_finite, max_step_norm, center, n_samples
):
    # Float64 (n, 2) embeddings take descent_step_2d; the reference is the
    # same step with the fused kernel switched off, step after step, with
    # NaN and infinity passing through as they do through NumPy.
    Y, update, gains, grads = _step_inputs(rng, (n_samples, 2), np.float64, non_finite)
    assert _optimizer._fused_step_applies(Y, grads[0])
    Y_ref = Y.copy()
    fused = _optimizer_at(update, gains, max_step_norm, center)
    reference = _optimizer_at(update, gains, max_step_norm, center)
    for it, grad in enumerate(grads):
        momentum = 0.5 if it < 6 else 0.8
        fused.step(Y, grad, momentum)
        with monkeypatch.context() as patch, np.errstate(invalid="ignore"):
            patch.setattr(_optimizer, "_fused_step_applies", lambda Y, grad: False)
            reference.step(Y_ref, grad, momentum)
        _assert_same_bits(Y, Y_ref)
        _assert_same_bits(fused.gains, reference.gains)
        _assert_same_bits(fused.update, reference.update)
    if non_finite:
        assert np.isnan(Y).any()
    else:
        assert np.isfinite(Y).all()


@pytest.mark.parametrize("max_step_norm", [5.0, None, 1e-3])
@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize(
    "shape, dtype",
    [
        ((40, 3), np.float64),
        ((40, 1), np.float64),
        ((40, 2), np.float32),
        ((40, 2), np.float64),
    ],
)
def test_array_step_matches_the_formulas(
    rng, monkeypatch, max_step_norm, center, shape, dtype
):
    # The array expressions against the formulas one coordinate at a time:
    # the inputs the fused kernel leaves to them, and its own (float64, two
    # columns) with the kernel switched off, the reference of the bitwise test.
    if shape[1] == 2 and dtype == np.float64:
        monkeypatch.setattr(_optimizer, "_fused_step_applies", lambda *args: False)
    Y, update, gains, grads = _step_inputs(rng, shape, dtype, non_finite=False)
    assert not _optimizer._fused_step_applies(Y, grads[0])
    Y_oracle, update_oracle, gains_oracle = Y.copy(), update.copy(), gains.copy()
    optimizer = _optimizer_at(update, gains, max_step_norm, center)
    rtol = 1e-4 if dtype == np.float32 else 1e-12
    for it, grad in enumerate(grads):
        momentum = 0.5 if it < 6 else 0.8
        optimizer.step(Y, grad, momentum)
        descent_step(
            Y_oracle,
            grad,
            update_oracle,
            gains_oracle,
            momentum,
            learning_rate=833.3,
            min_gain=0.05,
            max_step_norm=max_step_norm,
            center=center,
        )
        for actual, expected in (
            (Y, Y_oracle),
            (optimizer.gains, gains_oracle),
            (optimizer.update, update_oracle),
        ):
            assert actual.dtype == dtype
            # Centring and momentum cancel: errors scale with the largest value.
            assert_allclose(
                actual, expected, rtol=rtol, atol=rtol * np.abs(expected).max()
            )


def test_fused_step_leaves_other_inputs_to_the_array_expressions():
    Y = np.zeros((10, 2))
    assert not _optimizer._fused_step_applies(Y.astype(np.float32), Y)
    assert not _optimizer._fused_step_applies(Y, Y.astype(np.float32))
    assert not _optimizer._fused_step_applies(np.zeros((10, 3)), np.zeros((10, 3)))
    assert not _optimizer._fused_step_applies(np.asfortranarray(Y), Y)


def test_gradient_is_dropped_before_the_next_is_computed(rng):
    # The previous gradient would otherwise add an embedding-sized array to
    # the peak of every objective call.
    previous = []

    def objective(Y, compute_error):
        assert all(ref() is None for ref in previous)
        grad = 2.0 * Y
        previous.append(weakref.ref(grad))
        return (float(np.sum(Y**2)) if compute_error else None), grad

    GradientDescent(0.1, n_iter_check=3).run(
        rng.normal(size=(20, 2)), objective, n_iter=7, momentum=0.5
    )
    assert len(previous) == 8

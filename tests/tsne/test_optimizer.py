"""Gradient descent: gains, momentum, stopping rules and callbacks."""

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


@pytest.mark.parametrize("max_step_norm", [5.0, None, 1e-3])
@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("shape", [(5003, 2), (300, 3), (300, 1)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_step_matches_array_expressions_bitwise(
    rng, max_step_norm, center, shape, dtype
):
    # Float64 2-D embeddings take the fused kernel; the others the array
    # expressions. Both must give the oracle's bits, step after step, with
    # gains growing, shrinking and clipped, and steps capped.
    if dtype == np.float64 and shape[1] == 2:
        assert _optimizer._fused_step_applies(np.zeros(shape), np.zeros(shape))
    scale = np.exp(rng.normal(size=(shape[0], 1)) * 3.0)
    Y = (rng.normal(size=shape) * scale).astype(dtype)
    Y_oracle = Y.copy()
    update, gains = np.zeros_like(Y), np.ones_like(Y)
    optimizer = GradientDescent(
        np.float64(833.3), min_gain=0.05, max_step_norm=max_step_norm, center=center
    )
    for it in range(12):
        grad = (rng.normal(size=shape) * scale).astype(dtype)
        if it % 3 == 2:
            grad[: shape[0] // 2] *= -1.0
        momentum = 0.5 if it < 6 else 0.8
        optimizer.step(Y, grad, momentum)
        descent_step(
            Y_oracle,
            grad,
            update,
            gains,
            momentum,
            learning_rate=np.float64(833.3),
            min_gain=0.05,
            max_step_norm=max_step_norm,
            center=center,
        )
        assert_array_equal(Y, Y_oracle)
        assert_array_equal(optimizer.gains, gains)
        assert_array_equal(optimizer.update, update)


def test_fused_step_leaves_other_inputs_to_the_array_expressions():
    Y = np.zeros((10, 2))
    assert not _optimizer._fused_step_applies(Y.astype(np.float32), Y)
    assert not _optimizer._fused_step_applies(Y, Y.astype(np.float32))
    assert not _optimizer._fused_step_applies(np.zeros((10, 3)), np.zeros((10, 3)))
    assert not _optimizer._fused_step_applies(np.asfortranarray(Y), Y)

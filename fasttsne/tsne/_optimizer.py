"""Gradient descent with momentum and gains for t-SNE.

The optimiser knows nothing about how a gradient is computed: it calls an
``objective(Y, compute_error) -> (kl or None, grad)`` closure built by the
estimator around a gradient backend. Gains and momentum state persist across
the exaggeration phases (openTSNE's behaviour), so the main phase starts from
the early phase's velocities.

The same arithmetic serves NumPy arrays and the torch tensors of the device
loop (``device="cuda"``): the update uses only operations that both
namespaces have (``where``, ``clip``, ``einsum``...), chosen by
:func:`_namespace`, and never masks by boolean indexing, which would make a
GPU wait for the mask's count. Callbacks always see NumPy arrays.
"""

import numpy as np

from fasttsne._cython._forces import descent_step_2d


def _namespace(Y):
    """NumPy for arrays; torch for the tensors of the device loop."""
    if isinstance(Y, np.ndarray):
        return np
    import torch  # only reached with torch tensors, so torch is imported already

    return torch


def _as_numpy(Y):
    """``Y`` itself if it is a NumPy array, else a NumPy copy of the tensor."""
    if isinstance(Y, np.ndarray):
        return Y
    return Y.detach().cpu().numpy().copy()


def _fused_step_applies(Y, grad):
    """Whether ``descent_step_2d`` gives this step's bits (float64, 2-D).

    Its row-order column sums and two-term norms are NumPy's own only for
    two columns; other shapes, float32 (whose scalars follow NumPy's
    promotion rules) and torch tensors take the array expressions.
    """
    return (
        isinstance(Y, np.ndarray)
        and isinstance(grad, np.ndarray)
        and Y.dtype == np.float64
        and grad.dtype == np.float64
        and Y.ndim == 2
        and Y.shape[1] == 2
        and Y.shape == grad.shape
        and Y.flags.c_contiguous
        and grad.flags.c_contiguous
    )


class GradientDescent:
    """Batch gradient descent with momentum and adaptive per-coordinate gains.

    The update is the one of Jacobs (1988) as used by van der Maaten (2014):
    a gain grows by 0.2 where the gradient keeps its sign (the descent keeps
    its direction) and shrinks by a factor 0.8 where the gradient turns round,
    floored at ``min_gain``.

    Parameters
    ----------
    learning_rate : float
        Step size multiplying ``gains * grad``.
    min_gain : float, default=0.01
        Lower bound of the gains.
    max_step_norm : float or None, default=5.0
        Per-point cap on the update's Euclidean norm; it stops isolated points
        from shooting off during the first iterations (openTSNE does the same).
    center : bool, default=True
        Subtract the mean after each step. Off for out-of-sample points, which
        must not depend on each other.
    n_iter_check : int, default=50
        How often the error is computed and the stopping rules are applied.
    callbacks : list of callable, default=None
        Each is called as ``callback(iteration, kl, Y)`` every ``n_iter_check``
        iterations and after a phase's last one, with ``kl`` the error of
        ``Y`` after ``iteration`` iterations; returning True stops the
        optimisation.
    progress : object, default=None
        Its ``iteration(it, kl=None, grad_norm=None)`` is called after every
        iteration (1-based ``it``), with the error and gradient norm at checks
        (see :class:`fasttsne._progress.FitProgress`).
    """

    def __init__(
        self,
        learning_rate,
        *,
        min_gain=0.01,
        max_step_norm=5.0,
        center=True,
        n_iter_check=50,
        callbacks=None,
        progress=None,
    ):
        self.learning_rate = learning_rate
        self.min_gain = min_gain
        self.max_step_norm = max_step_norm
        self.center = center
        self.n_iter_check = n_iter_check
        self.callbacks = list(callbacks or ())
        self.progress = progress
        self.update = None
        self.gains = None

    def step(self, Y, grad, momentum):
        """Apply one gains-and-momentum update to ``Y`` in place.

        ``Y`` and ``grad`` are NumPy arrays, or torch tensors on one device.
        """
        xp = _namespace(Y)
        if self.update is None:
            self.update = xp.zeros_like(Y)
            self.gains = xp.ones_like(Y)
        if _fused_step_applies(Y, grad):
            descent_step_2d(
                Y,
                grad,
                self.update,
                self.gains,
                float(momentum),
                float(self.learning_rate),
                float(self.min_gain),
                float(self.max_step_norm or 0.0),
                self.max_step_norm is not None,
                bool(self.center),
            )
            return
        # grad * update < 0: the descent keeps its direction, so speed it up.
        same_direction = (self.update * grad) < 0
        self.gains = xp.where(same_direction, self.gains + 0.2, self.gains * 0.8)
        self.gains = xp.clip(self.gains, self.min_gain, None)
        self.update *= momentum
        self.update -= self.learning_rate * self.gains * grad
        if self.max_step_norm is not None:
            norms = xp.sqrt(xp.einsum("ij,ij->i", self.update, self.update))
            # Rows longer than the cap shrink to it; the others are multiplied
            # by max_step_norm / max_step_norm, exactly 1.
            capped = xp.clip(norms, self.max_step_norm, None)
            self.update *= (self.max_step_norm / capped)[:, None]
        Y += self.update
        if self.center:
            Y -= Y.mean(axis=0)

    def run(
        self,
        Y,
        objective,
        *,
        n_iter,
        momentum,
        start_iter=0,
        n_iter_without_progress=None,
        min_grad_norm=0.0,
    ):
        """Run ``n_iter`` iterations of one phase on ``Y`` (updated in place).

        Parameters
        ----------
        Y : ndarray or torch.Tensor of shape (n_samples, n_components)
            The embedding, modified in place.
        objective : callable
            ``objective(Y, compute_error) -> (kl or None, grad)``, called once
            per iteration and once more after the last one (to evaluate the
            error of the final ``Y``).
        n_iter : int
            Iterations in this phase.
        momentum : float
            Momentum of this phase.
        start_iter : int, default=0
            Global index of the first iteration (for messages and callbacks).
        n_iter_without_progress : int or None, default=None
            Stop when the error has not improved for this many iterations.
        min_grad_norm : float, default=0.0
            Stop when the gradient norm falls to this value.

        Returns
        -------
        kl : float or None
            The error of ``Y`` as returned (after the last update); a check
            is always made after the phase's last iteration.
        n_done : int
            Iterations actually run.
        reason : {"max_iter", "callback", "no_progress", "converged"}
            Why the phase ended.

        Notes
        -----
        A check after iteration ``it`` needs the error of the embedding that
        iteration produced, which the objective evaluates at the start of
        iteration ``it + 1`` anyway: the check is made there, before that
        iteration's update, so a check costs no more than the error term.
        Only the phase's last check costs one more objective evaluation.
        """
        best = [np.inf, start_iter]  # the best error so far, and its iteration

        def check(it, kl, grad):
            """Report, call back and apply the stopping rules after ``it``.

            ``kl`` and ``grad`` are those of ``Y`` after iteration ``it``.
            Returns the reason to stop, or None.
            """
            grad_norm = float(_namespace(grad).linalg.norm(grad))
            if self.progress is not None:
                self.progress.iteration(it + 1, kl, grad_norm)
            Y_seen = _as_numpy(Y) if self.callbacks else None
            if any(callback(it + 1, kl, Y_seen) for callback in self.callbacks):
                return "callback"
            if kl < best[0]:
                best[:] = kl, it
            elif (
                n_iter_without_progress is not None
                and it - best[1] > n_iter_without_progress
            ):
                return "no_progress"
            if grad_norm <= min_grad_norm:
                return "converged"
            return None

        kl = None
        pending = None  # the iteration whose check awaits the error of Y
        for offset in range(n_iter):
            it = start_iter + offset
            kl_now, grad = objective(Y, pending is not None)
            if pending is not None:
                kl = kl_now
                reason = check(pending, kl, grad)
                if reason is not None:
                    return kl, offset, reason
                pending = None
            self.step(Y, grad, momentum)
            # Not kept through the next objective call, where it would add an
            # embedding-sized array to the iteration's peak.
            del grad
            if (it + 1) % self.n_iter_check == 0 or offset == n_iter - 1:
                pending = it
            elif self.progress is not None:
                self.progress.iteration(it + 1)
        if pending is not None:
            kl, grad = objective(Y, True)
            reason = check(pending, kl, grad)
            if reason is not None:
                return kl, n_iter, reason
        return kl, n_iter, "max_iter"

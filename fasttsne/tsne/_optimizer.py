"""Gradient descent with momentum and gains for t-SNE.

The optimiser knows nothing about how a gradient is computed: it calls an
``objective(Y, compute_error) -> (kl or None, grad)`` closure built by the
estimator around a gradient backend. Gains and momentum state persist across
the exaggeration phases (openTSNE's behaviour), so the main phase starts from
the early phase's velocities.
"""

import numpy as np


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
    printer : callable, default=None
        Receives progress lines when verbose.
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
        printer=None,
    ):
        self.learning_rate = learning_rate
        self.min_gain = min_gain
        self.max_step_norm = max_step_norm
        self.center = center
        self.n_iter_check = n_iter_check
        self.callbacks = list(callbacks or ())
        self.printer = printer
        self.update = None
        self.gains = None

    def step(self, Y, grad, momentum):
        """Apply one gains-and-momentum update to ``Y`` in place."""
        if self.update is None:
            self.update = np.zeros_like(Y)
            self.gains = np.ones_like(Y)
        # grad * update < 0: the descent keeps its direction, so speed it up.
        same_direction = (self.update * grad) < 0
        self.gains[same_direction] += 0.2
        self.gains[~same_direction] *= 0.8
        np.maximum(self.gains, self.min_gain, out=self.gains)
        self.update *= momentum
        self.update -= self.learning_rate * self.gains * grad
        if self.max_step_norm is not None:
            norms = np.sqrt(np.einsum("ij,ij->i", self.update, self.update))
            too_long = norms > self.max_step_norm
            if np.any(too_long):
                self.update[too_long] *= (self.max_step_norm / norms[too_long])[:, None]
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
        Y : ndarray of shape (n_samples, n_components)
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
            grad_norm = float(np.linalg.norm(grad))
            if self.printer is not None:
                self.printer(
                    f"Iteration {it + 1}: KL divergence {kl:.4f}, "
                    f"gradient norm {grad_norm:.3e}"
                )
            if any(callback(it + 1, kl, Y) for callback in self.callbacks):
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
            if (it + 1) % self.n_iter_check == 0 or offset == n_iter - 1:
                pending = it
        if pending is not None:
            kl, grad = objective(Y, True)
            reason = check(pending, kl, grad)
            if reason is not None:
                return kl, n_iter, reason
        return kl, n_iter, "max_iter"

"""Registry of the t-SNE gradient backends, and the device policy.

A backend is a class with

* ``name`` and ``aliases`` (str, tuple of str) and ``knobs``, the names of
  its constructor's keyword arguments besides ``n_threads``;
* ``is_usable_for(*, n_components, device) -> bool``, a classmethod;
* ``__init__(*, <knobs>, n_threads)``;
* ``prepare(P, reference=None)``, called once per fit (or ``transform``):
  it moves or casts P, and in reference mode the frozen embedding, to where
  it computes and sets up its buffers;
* ``__call__(Y, *, exaggeration, dof, compute_error) -> (kl | None, grad)``.

Without ``reference`` the gradient is t-SNE's; with it (``transform``), that
of the rows of P (new points) against the frozen embedding, normalised per
point: ``4 [a sum_j p_{j|i} (y_i - r_j) / t_ij - sum_j (w_ij / t_ij)
(y_i - r_j) / sum_j w_ij]``. The optimiser sees nothing else, so it never
knows how a gradient is computed.

``_BACKENDS`` is a literal mapping from canonical names to classes. The
modules of those classes must import nothing heavy at module scope: a CUDA
backend imports torch and triton inside ``is_usable_for``, ``__init__`` and
``prepare``, so that importing this package (and ``fasttsne``) never imports
them; ``tests/tsne/test_gradients.py`` checks it.
"""

from fasttsne import gpu
from fasttsne.tsne._gradients._bh import BarnesHutGradient
from fasttsne.tsne._gradients._exact import ExactGradient
from fasttsne.tsne._gradients._fft import FFTGradient
from fasttsne.tsne._gradients._triton import TritonFFTGradient, TritonGradient

__all__ = ["get_backend", "list_backends", "resolve_device"]

_BACKENDS = {
    "fft": FFTGradient,
    "bh": BarnesHutGradient,
    "exact": ExactGradient,
    "triton": TritonGradient,
    "triton_fft": TritonFFTGradient,
}

_DEVICES = ("cpu", "cuda")


def list_backends():
    """Canonical names of the registered backends, in the order "auto" tries them.

    Returns
    -------
    names : list of str
        What :func:`get_backend` accepts besides the aliases and ``"auto"``.
    """
    return list(_BACKENDS)


def _lookup(name):
    """The class registered under ``name`` or one of its aliases."""
    for canonical, cls in _BACKENDS.items():
        if name == canonical or name in cls.aliases:
            return cls
    valid = sorted(
        {"auto", *_BACKENDS, *(a for cls in _BACKENDS.values() for a in cls.aliases)}
    )
    raise ValueError(f"Unknown gradient backend {name!r}; valid names are {valid}.")


def get_backend(name, *, device, n_components, n_threads, preference=None, **knobs):
    """Resolve ``name`` (or ``"auto"``) into a backend instance.

    Parameters
    ----------
    name : str
        A backend name, one of its aliases, or ``"auto"``.
    device : {"cpu", "cuda"}
        Where it runs (see :func:`resolve_device`).
    n_components : int
        Embedding dimension.
    n_threads : int
        Threads of the backend.
    preference : sequence of str, default=None
        Names tried in order when ``name == "auto"``, the first usable one
        winning; None means every registered backend, in registry order.
    **knobs : dict
        The caller's knobs (``angle``, grid sizes...). Each backend receives
        those among its ``knobs``; a knob that no registered backend takes
        raises ``TypeError``.

    Returns
    -------
    backend : object
        An unprepared backend; ``backend.name`` is its canonical name.
    """
    if device not in _DEVICES:
        raise ValueError(f"device must be one of {_DEVICES}, got {device!r}.")
    known_knobs = {knob for cls in _BACKENDS.values() for knob in cls.knobs}
    unknown = sorted(set(knobs) - known_knobs)
    if unknown:
        raise TypeError(f"No gradient backend takes the knobs {unknown}.")
    if name != "auto":
        names = (name,)
    elif preference is None:
        names = list_backends()
    else:
        names = preference
    candidates = [_lookup(n) for n in names]
    for cls in candidates:
        if cls.is_usable_for(n_components=n_components, device=device):
            own = {knob: value for knob, value in knobs.items() if knob in cls.knobs}
            return cls(n_threads=n_threads, **own)
        if name != "auto":
            raise ValueError(
                f"Gradient backend {name!r} cannot run with "
                f"n_components={n_components} on device={device!r}."
            )
    raise ValueError(
        f"No gradient backend among {[cls.name for cls in candidates]} can run "
        f"with n_components={n_components} on device={device!r}."
    )


def _any_usable(names, *, n_components, device):
    """Whether one of the backends ``names`` can run on ``device``."""
    return any(
        _lookup(name).is_usable_for(n_components=n_components, device=device)
        for name in names
    )


def resolve_device(requested, *, preference, n_components):
    """Turn an estimator's ``device`` into ``"cpu"`` or ``"cuda"``.

    Parameters
    ----------
    requested : {"auto", "cpu", "cuda"}
        The estimator's parameter.
    preference : dict of str to sequence of str
        Backend names the estimator prefers on each device.
    n_components : int
        Embedding dimension.

    Returns
    -------
    device : {"cpu", "cuda"}
        ``"auto"`` gives ``"cuda"`` only when a preferred CUDA backend is
        usable (hence torch, triton and a device are there), else ``"cpu"``.

    Raises
    ------
    ImportError
        ``"cuda"`` without torch and triton, with the install hint.
    ValueError
        ``"cuda"`` without a visible CUDA device, or without a preferred
        backend that can run there.
    """
    cuda_names = tuple(preference.get("cuda", ()))
    if requested == "cpu":
        return "cpu"
    if requested == "auto":
        usable = _any_usable(cuda_names, n_components=n_components, device="cuda")
        return "cuda" if usable else "cpu"
    if requested != "cuda":
        raise ValueError(f'device must be "auto", "cpu" or "cuda", got {requested!r}.')
    gpu.require()
    if not gpu.is_available():
        raise ValueError(
            'device="cuda" was requested but torch sees no CUDA device on this '
            "machine."
        )
    if not _any_usable(cuda_names, n_components=n_components, device="cuda"):
        raise ValueError(
            'device="cuda" was requested but this fasttsne has no CUDA gradient '
            f"backend for n_components={n_components}."
        )
    return "cuda"

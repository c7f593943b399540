"""Registry of t-SNE gradient backends, all with one call signature.

A backend is an object with ``name``, ``aliases``,
``is_usable_for(embedding, *, n_components, device)`` and
``__call__(Y, P, *, dof, exaggeration, compute_error, n_threads) -> (kl, grad)``,
where ``kl`` is ``None`` unless ``compute_error``. The optimiser calls nothing
else, so it never knows how a gradient is computed.
"""

import importlib

from fasttsne.tsne._gradients._exact import ExactGradient

# name -> factory taking the backend's own knobs (angle, grid sizes...).
_BACKENDS = {"exact": ExactGradient}


def register_backend(factory):
    """Add a backend class to the registry (used by the backend modules)."""
    _BACKENDS[factory.name] = factory
    return factory


def list_backends():
    """Names of the registered backends, in registration order."""
    _load_optional_backends()
    return list(_BACKENDS)


def _load_optional_backends():
    """Import the compiled backends so that they register themselves."""
    for module in ("fasttsne.tsne._gradients._bh", "fasttsne.tsne._gradients._fft"):
        importlib.import_module(module)


def get_backend(
    name, *, preference=(), params=None, embedding="tsne", n_components=2, device="cpu"
):
    """Resolve ``name`` (or ``"auto"``) into a backend instance.

    Parameters
    ----------
    name : str
        A backend name, one of its aliases, or ``"auto"``.
    preference : sequence of str, default=()
        Names tried in order when ``name == "auto"``; the first usable wins.
    params : dict of str to dict, default=None
        Constructor keyword arguments per backend name, e.g.
        ``{"bh": {"angle": 0.5}}``.
    embedding : str, default="tsne"
        What the gradient is for, passed to ``is_usable_for``.
    n_components : int, default=2
        Embedding dimension, passed to ``is_usable_for``.
    device : {"cpu", "cuda"}, default="cpu"
        Where it runs, passed to ``is_usable_for``.

    Returns
    -------
    backend : object
        A ready-to-call backend; ``backend.name`` is its canonical name.
    """
    _load_optional_backends()
    params = {} if params is None else params
    lookup = {}
    for key, factory in _BACKENDS.items():
        lookup[key] = factory
        for alias in factory.aliases:
            lookup[alias] = factory
    candidates = preference if name == "auto" else (name,)
    for candidate in candidates:
        if candidate not in lookup:
            raise ValueError(
                f"Unknown gradient backend {candidate!r}; valid ones are "
                f"{sorted(lookup)}."
            )
        factory = lookup[candidate]
        backend = factory(**params.get(factory.name, {}))
        if backend.is_usable_for(embedding, n_components=n_components, device=device):
            return backend
        if name != "auto":
            raise ValueError(
                f"Gradient backend {candidate!r} cannot run with "
                f"n_components={n_components} on device={device!r}."
            )
    raise ValueError(
        f"No gradient backend among {list(candidates)} can run with "
        f"n_components={n_components} on device={device!r}."
    )

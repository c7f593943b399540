"""Shared pytest setup: let scikit-learn's array API checks run instead of skipping."""

import os

# Must happen before scipy is first imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

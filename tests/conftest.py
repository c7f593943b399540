"""Test configuration shared by every test module."""

import os

# Before scipy is imported: lets the array-API checks of check_estimator run.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

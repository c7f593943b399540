"""scikit-learn's array API estimator checks, one case per namespace, device, dtype."""

from sklearn.utils._array_api import yield_namespace_device_dtype_combinations
from sklearn.utils.estimator_checks import (
    check_array_api_input,
    check_array_api_input_and_values,
)

# The values check compares in float64, as scikit-learn's own tests run it.
ARRAY_API_CHECKS = [
    (check, *combination)
    for combination in yield_namespace_device_dtype_combinations()
    for check in (check_array_api_input, check_array_api_input_and_values)
    if check is check_array_api_input or combination[2] == "float64"
]

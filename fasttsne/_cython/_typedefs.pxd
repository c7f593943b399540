# Fixed-width type names shared by every kernel (numpy's C types).
from numpy cimport float32_t, float64_t, int32_t, int64_t, intp_t, uint32_t, uint64_t

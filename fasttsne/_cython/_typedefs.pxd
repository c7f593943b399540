# Fixed-width type names shared by every kernel (numpy's C types).
from numpy cimport float32_t, float64_t, int32_t, int64_t, intp_t, uint32_t, uint64_t

# Index type of the CSR arrays the kernels read: scipy gives int32 or int64.
ctypedef fused index_t:
    int32_t
    int64_t

# Value type of the affinities P: float32 (a fit's own) or float64 (given).
ctypedef fused pvalue_t:
    float32_t
    float64_t

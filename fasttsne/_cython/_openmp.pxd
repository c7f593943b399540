# The only door to OpenMP. Without _OPENMP (e.g. clang without libomp) the
# fallbacks below make every parallel region run serially on one thread, and
# FASTTSNE_OPENMP says which of the two builds this is (see _openmp_info.pyx).
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define FASTTSNE_OPENMP 1
    #else
    #define FASTTSNE_OPENMP 0
    static inline int omp_get_max_threads(void) { return 1; }
    static inline int omp_get_num_threads(void) { return 1; }
    static inline int omp_get_thread_num(void) { return 0; }
    #endif
    """
    int FASTTSNE_OPENMP
    int omp_get_max_threads() noexcept nogil
    int omp_get_num_threads() noexcept nogil
    int omp_get_thread_num() noexcept nogil

import COpenSSL
import CN2HEKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Run-time selection of the AVX-512 kernels in CN2HEKernels/include/n2he_simd.h.
enum SIMDSupport {
    /// AVX-512 F+DQ+BW present and enabled by the OS, and N2HE_DISABLE_SIMD not set (tests use it to run the
    /// scalar paths).
    static let avx512: Bool = n2he_cpu_has_avx512() != 0 && getenv("N2HE_DISABLE_SIMD") == nil
}

//! Element-wise loops (epilogues, quantization) compiled for the widest vectors the CPU has.
//! A native build targets baseline x86-64 (SSE2), where these loops vectorize poorly or not at
//! all (SSE2 has no unsigned max, no fast float → int conversion); the products choose their
//! kernels at run time (`dot`, `gemm`), and so do these loops, through [`widest!`]. Every
//! version computes the same operations in the same order (no fused multiply-add is formed),
//! so the results are the same bits; in wasm the build's SIMD128 applies throughout.

/// Defines `fn $name(..) -> $ret` whose body is compiled three times on x86-64 (AVX-512,
/// AVX2, baseline) and run in the widest version this CPU has.
macro_rules! widest {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) -> $ret {
            #[inline(always)]
            fn body($($arg: $ty),*) -> $ret $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl")]
                fn avx512($($arg: $ty),*) -> $ret {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) -> $ret {
                    body($($arg),*)
                }
                if $crate::model::cpu::simd::has_avx512() {
                    // SAFETY: the CPU has the features `avx512` is compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(super) use widest;

/// Whether the CPU has the AVX-512 subsets `widest!` compiles for: asked once (the loops it
/// serves run once per output row).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx512() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
    })
}

//! Which instruction set the CPU engine's own kernels use, decided in one place.
//!
//! Each kernel family is compiled for several x86 levels and picked at run time from
//! the CPU's features. On aarch64, NEON is part of the baseline, so the f32 kernels
//! have a single (auto-vectorized) copy, and the int8 kernel is the `sdot` one where
//! the CPU has the dotprod extension (most cores since Cortex-A55 / Neoverse N1;
//! not Cortex-A53 / A72, nor the Raspberry Pi 4), else the portable one. Two families exist: the f32 element-wise kernels (`kernels`, and
//! the quantization passes of `int8`) and the int8 matrix kernel (`int8::matmul`). Both
//! ask this module, so a single switch can force every path, which is how the slower
//! paths get tested on a fast machine:
//!
//! `CROSSRANK_ISA` caps the instruction set (read once, at the first kernel call):
//!
//! - `scalar`: no explicit SIMD; f32 kernels run their baseline copy and int8 runs the
//!   portable kernel (which `precision="int8"` then really uses: see `int8::enabled`).
//! - `avx2`: x86-64-v3 (AVX2 + FMA): no AVX-512 and no AVX-VNNI.
//! - `avxvnni`: as `avx2`, plus the 256-bit AVX-VNNI int8 kernel.
//! - `dotprod` (aarch64): the NEON `sdot` int8 kernel. On x86 it sits below `avx2`:
//!   it warns (the CPU lacks it) and leaves the baseline f32 copy and no fast int8
//!   kernel, so `precision="int8"` runs float32.
//! - `avx512`, or unset / empty: whatever the CPU has.
//!
//! The x86 names on aarch64 (and `dotprod` on x86) name an ISA the CPU lacks: they
//! warn and cap at the nearest level below, which for the x86 names on aarch64 still
//! allows `sdot` (levels are one order: scalar < dotprod < avx2 < avxvnni < avx512).
//!
//! The cap only lowers the level: naming an ISA the CPU lacks, or a value not in this
//! list, prints a warning to stderr and runs the best the CPU has below the cap (an
//! unknown value is ignored). A warning rather than an error because the variable is
//! read deep inside a forward pass, where there is no error path to the caller, and a
//! test run should not abort on a typo. The f32 matrix products go through the `gemm`
//! crate, which dispatches on its own and does not see this variable.

use std::sync::OnceLock;

/// The environment variable that caps the instruction set.
pub const ENV: &str = "CROSSRANK_ISA";

/// Instruction-set levels, ordered: a cap allows its level and those below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Scalar,
    /// aarch64's dotprod extension (`sdot`); no x86 kernel sits at this level.
    Dotprod,
    Avx2,
    AvxVnni,
    Avx512,
}

/// The cap from `CROSSRANK_ISA`; the first call prints the warning, if any.
fn cap() -> Level {
    static CAP: OnceLock<Level> = OnceLock::new();
    *CAP.get_or_init(|| {
        let value = std::env::var(ENV).unwrap_or_default();
        let (cap, warning) = parse_cap(&value);
        if let Some(warning) = warning {
            log::warn!("{warning}");
        }
        cap
    })
}

/// The cap a `CROSSRANK_ISA` value sets, and a warning when the CPU cannot honour it.
fn parse_cap(value: &str) -> (Level, Option<String>) {
    let level = match value.trim().to_ascii_lowercase().as_str() {
        "" => return (Level::Avx512, None),
        "avx512" => Level::Avx512,
        "scalar" => Level::Scalar,
        "dotprod" => Level::Dotprod,
        "avx2" => Level::Avx2,
        "avxvnni" => Level::AvxVnni,
        other => {
            return (
                Level::Avx512,
                Some(format!(
                    "{ENV}={other:?} not understood (expected scalar, dotprod, avx2, \
                     avxvnni or avx512); ignored"
                )),
            )
        }
    };
    let missing = match level {
        Level::Dotprod if !cpu::dotprod() => Some("the dotprod extension (NEON sdot)"),
        Level::Avx2 if !cpu::avx2() => Some("AVX2 + FMA"),
        Level::AvxVnni if !cpu::avx2() || !cpu::avxvnni() => Some("AVX-VNNI"),
        Level::Avx512 if !cpu::avx512() => Some("AVX-512 F/BW/VL"),
        _ => None,
    };
    (
        level,
        missing.map(|m| format!("{ENV}={value}: this CPU lacks {m}; using a lower level")),
    )
}

/// Whether `CROSSRANK_ISA=scalar` forced the portable kernels.
pub fn forced_scalar() -> bool {
    cap() == Level::Scalar
}

/// Raw CPU feature checks (no cap). `is_x86_feature_detected!` and
/// `is_aarch64_feature_detected!` cache their answers.
mod cpu {
    #[cfg(target_arch = "x86_64")]
    macro_rules! has {
        ($($f:tt),*) => { $(std::arch::is_x86_feature_detected!($f))&&* };
    }

    /// AVX2 + FMA: x86-64-v3's vector part.
    pub fn avx2() -> bool {
        #[cfg(target_arch = "x86_64")]
        return has!("avx2", "fma");
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// AVX-512 F/BW/VL: what the f32 AVX-512 copies are compiled for.
    pub fn avx512() -> bool {
        #[cfg(target_arch = "x86_64")]
        return has!("avx512f", "avx512bw", "avx512vl");
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    pub fn avx512vnni() -> bool {
        #[cfg(target_arch = "x86_64")]
        return avx512() && has!("avx512vnni");
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// The VEX-encoded (256-bit) VNNI of Alder Lake and later, Zen 5.
    pub fn avxvnni() -> bool {
        #[cfg(target_arch = "x86_64")]
        return has!("avxvnni");
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// NEON `sdot` / `udot` (Armv8.2 dotprod; mandatory from Armv8.4).
    pub fn dotprod() -> bool {
        #[cfg(target_arch = "aarch64")]
        return std::arch::is_aarch64_feature_detected!("dotprod");
        #[cfg(not(target_arch = "aarch64"))]
        false
    }

    /// The features above that the CPU has, by their `is_x86_feature_detected!` /
    /// `is_aarch64_feature_detected!` names.
    pub fn features() -> Vec<&'static str> {
        #[cfg(target_arch = "x86_64")]
        macro_rules! present {
            ($($f:tt),*) => { [$(($f, std::arch::is_x86_feature_detected!($f))),*] };
        }
        #[cfg(target_arch = "x86_64")]
        return present!(
            "avx2",
            "fma",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512vnni",
            "avxvnni"
        )
        .into_iter()
        .filter(|&(_, present)| present)
        .map(|(name, _)| name)
        .collect();
        #[cfg(target_arch = "aarch64")]
        macro_rules! present {
            ($($f:tt),*) => { [$(($f, std::arch::is_aarch64_feature_detected!($f))),*] };
        }
        // i8mm (`usdot`, `smmla`) is reported for information: no kernel uses it.
        #[cfg(target_arch = "aarch64")]
        return present!("neon", "dotprod", "i8mm")
            .into_iter()
            .filter(|&(_, present)| present)
            .map(|(name, _)| name)
            .collect();
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        Vec::new()
    }
}

/// The copy of the f32 element-wise kernels in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum F32Kernel {
    /// AVX-512 F/BW/VL (+ AVX2, FMA).
    Avx512,
    /// AVX2 + FMA.
    Avx2,
    /// The baseline target (SSE2 on x86_64, NEON on aarch64): whatever the compiler
    /// vectorizes.
    Generic,
}

impl F32Kernel {
    /// The best copy the CPU and `CROSSRANK_ISA` allow; decided once.
    pub fn detect() -> Self {
        static KERNEL: OnceLock<F32Kernel> = OnceLock::new();
        *KERNEL.get_or_init(|| {
            let cap = cap();
            if cap >= Level::Avx512 && cpu::avx512() {
                Self::Avx512
            } else if cap >= Level::Avx2 && cpu::avx2() {
                Self::Avx2
            } else {
                Self::Generic
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Avx512 => "avx512",
            Self::Avx2 => "avx2",
            Self::Generic => "generic",
        }
    }
}

/// The int8 matrix kernel of `int8::matmul`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Int8Kernel {
    /// 512-bit `vpdpbusd` (AVX-512 VNNI).
    Avx512Vnni,
    /// 256-bit `vpdpbusd` (AVX-VNNI).
    AvxVnni,
    /// 256-bit `vpmaddwd` on activations and weights widened to i16.
    Avx2,
    /// aarch64 NEON `sdot` (dotprod) on activations shifted to i8.
    NeonDot,
    /// Scalar loops: for CPUs without any of the above, and for testing.
    Portable,
}

impl Int8Kernel {
    /// Every kernel, fastest first.
    pub const ALL: [Self; 5] = [
        Self::Avx512Vnni,
        Self::AvxVnni,
        Self::Avx2,
        Self::NeonDot,
        Self::Portable,
    ];

    /// The fastest kernel the CPU and `CROSSRANK_ISA` allow; decided once.
    pub fn detect() -> Self {
        static KERNEL: OnceLock<Int8Kernel> = OnceLock::new();
        *KERNEL.get_or_init(|| {
            let cap = cap();
            Self::ALL
                .into_iter()
                .find(|k| k.supported() && k.level() <= cap)
                .unwrap_or(Self::Portable)
        })
    }

    /// Whether this CPU can run the kernel, whatever `CROSSRANK_ISA` says.
    pub fn supported(self) -> bool {
        match self {
            Self::Avx512Vnni => cpu::avx512vnni(),
            Self::AvxVnni => cpu::avx2() && cpu::avxvnni(),
            Self::Avx2 => cpu::avx2(),
            Self::NeonDot => cpu::dotprod(),
            Self::Portable => true,
        }
    }

    /// Whether the kernel is faster than the f32 path's matrix products (the portable
    /// one is a scalar loop, many times slower).
    pub fn is_fast(self) -> bool {
        self != Self::Portable
    }

    /// Whether the kernel does more than twice the multiply-adds per second of the f32
    /// GEMM, so that a layer whose weights need more than one int8 code is faster as two
    /// int8 terms than in f32 (see `encoder`'s module doc). The VNNI and dotprod
    /// kernels: 4 products per 32-bit lane and instruction where f32 FMA does 1. Not the
    /// AVX2 one: its exact i16 route measured 1.43x f32 FMA (benches/RESULTS.md). The
    /// portable one counts with the VNNI kernels, whose scores it reproduces for tests.
    pub fn two_terms_pay(self) -> bool {
        self != Self::Avx2
    }

    fn level(self) -> Level {
        match self {
            Self::Avx512Vnni => Level::Avx512,
            Self::AvxVnni => Level::AvxVnni,
            Self::Avx2 => Level::Avx2,
            Self::NeonDot => Level::Dotprod,
            Self::Portable => Level::Scalar,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Avx512Vnni => "avx512vnni",
            Self::AvxVnni => "avxvnni",
            Self::Avx2 => "avx2",
            Self::NeonDot => "neon-dotprod",
            Self::Portable => "portable",
        }
    }
}

/// What the CPU engine runs on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// The relevant CPU features present (regardless of `CROSSRANK_ISA`).
    pub cpu_features: Vec<&'static str>,
    /// The f32 element-wise kernels' copy: "avx512", "avx2" or "generic".
    pub f32_kernel: &'static str,
    /// The int8 matrix kernel: "avx512vnni", "avxvnni", "avx2", "neon-dotprod" or
    /// "portable".
    pub int8_kernel: &'static str,
    /// How int8 models store their FFN output projections: "int8x2" (two int8 terms)
    /// or "float32" (`Int8Kernel::two_terms_pay`).
    pub int8_ffn_output: &'static str,
    /// `CROSSRANK_ISA` as set, if it was.
    pub isa_cap: Option<String>,
}

/// The kernels in use and the CPU features they were chosen from.
pub fn runtime_info() -> RuntimeInfo {
    RuntimeInfo {
        cpu_features: cpu::features(),
        f32_kernel: F32Kernel::detect().name(),
        int8_kernel: Int8Kernel::detect().name(),
        int8_ffn_output: if Int8Kernel::detect().two_terms_pay() {
            "int8x2"
        } else {
            "float32"
        },
        isa_cap: std::env::var(ENV).ok().filter(|v| !v.trim().is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_values() {
        assert_eq!(parse_cap(""), (Level::Avx512, None));
        let (level, warning) = parse_cap(" AVX512 ");
        assert_eq!(level, Level::Avx512);
        assert_eq!(warning.is_some(), !cpu::avx512());
        assert_eq!(parse_cap("scalar"), (Level::Scalar, None));
        let (level, warning) = parse_cap("sse9");
        assert_eq!(level, Level::Avx512);
        assert!(warning.is_some_and(|w| w.contains("not understood")));
        let (level, warning) = parse_cap("avx2");
        assert_eq!(level, Level::Avx2);
        assert_eq!(warning.is_some(), !cpu::avx2());
        let (level, warning) = parse_cap("dotprod");
        assert_eq!(level, Level::Dotprod);
        assert_eq!(warning.is_some(), !cpu::dotprod());
        // On x86 no kernel sits at the dotprod level: it caps like scalar.
        assert!(Level::Scalar < Level::Dotprod && Level::Dotprod < Level::Avx2);
    }

    #[test]
    fn detection_is_consistent() {
        let int8 = Int8Kernel::detect();
        assert!(int8.supported() && int8.level() <= cap());
        // Nothing faster that the cap allows was passed over.
        for k in Int8Kernel::ALL {
            if k == int8 {
                break;
            }
            assert!(!k.supported() || k.level() > cap(), "{k:?} skipped");
        }
        let info = runtime_info();
        assert_eq!(info.int8_kernel, int8.name());
        assert_eq!(info.f32_kernel, F32Kernel::detect().name());
        if cap() == Level::Avx512 && cpu::avx2() {
            assert_ne!(info.f32_kernel, "generic");
            assert!(int8.is_fast());
        }
        if cap() >= Level::Dotprod && cpu::dotprod() {
            assert_eq!(int8, Int8Kernel::NeonDot);
        }
        #[cfg(target_arch = "aarch64")]
        {
            assert_eq!(info.f32_kernel, "generic");
            assert!(info.cpu_features.contains(&"neon"));
            assert_eq!(info.cpu_features.contains(&"dotprod"), cpu::dotprod());
        }
    }
}

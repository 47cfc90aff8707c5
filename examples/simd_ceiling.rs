//! The multiply-add ceiling of each x86 int8 / f32 instruction route on this CPU, with
//! no memory traffic: a 6-row x 16-column register tile (the int8 AVX2 kernel's shape,
//! and the `gemm` crate's f32 x2x6 kernel's) updated in a loop. It bounds what an int8
//! kernel can gain over float32 on an AVX2-only host, whatever the blocking:
//!
//! - `vpmaddwd` on i16 (crossrank's exact AVX2 route): 16 products + `vpaddd`,
//! - `vpmaddubsw` u8 x i8 + `vpmaddwd` by ones + `vpaddd` (32 products; exact only with
//!   7-bit weights or activations: 2 * 255 * 127 saturates i16),
//! - `vfmadd231ps` f32: 8 products.
//!
//!     cargo run --release --example simd_ceiling
//!
//! Prints billions of multiply-adds per second on one thread; run it alone on the
//! machine.

#[cfg(target_arch = "x86_64")]
mod routes {
    use std::arch::x86_64::*;
    use std::hint::black_box;

    /// Rows x vectors of the register tile.
    const ROWS: usize = 6;

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn madd_i16(steps: usize) -> i32 {
        let w = [
            black_box(_mm256_set1_epi16(3)),
            black_box(_mm256_set1_epi16(5)),
        ];
        let x = black_box([1i32; ROWS]);
        let mut acc = [[_mm256_setzero_si256(); 2]; ROWS];
        for _ in 0..steps {
            for (r, acc) in acc.iter_mut().enumerate() {
                let xb = _mm256_set1_epi32(std::ptr::read_volatile(&x[r]));
                acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(xb, w[0]));
                acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(xb, w[1]));
            }
        }
        fold(acc)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn maddubs_u8(steps: usize) -> i32 {
        let ones = _mm256_set1_epi16(1);
        let w = [
            black_box(_mm256_set1_epi8(3)),
            black_box(_mm256_set1_epi8(5)),
        ];
        let x = black_box([1i32; ROWS]);
        let mut acc = [[_mm256_setzero_si256(); 2]; ROWS];
        for _ in 0..steps {
            for (r, acc) in acc.iter_mut().enumerate() {
                let xb = _mm256_set1_epi32(std::ptr::read_volatile(&x[r]));
                for (acc, w) in acc.iter_mut().zip(w) {
                    let pairs = _mm256_maddubs_epi16(xb, w);
                    *acc = _mm256_add_epi32(*acc, _mm256_madd_epi16(pairs, ones));
                }
            }
        }
        fold(acc)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn fma_f32(steps: usize) -> f32 {
        let w = [
            black_box(_mm256_set1_ps(0.5)),
            black_box(_mm256_set1_ps(0.25)),
        ];
        let x = black_box([1e-9f32; ROWS]);
        let mut acc = [[_mm256_setzero_ps(); 2]; ROWS];
        for _ in 0..steps {
            for (r, acc) in acc.iter_mut().enumerate() {
                let xb = _mm256_set1_ps(std::ptr::read_volatile(&x[r]));
                acc[0] = _mm256_fmadd_ps(xb, w[0], acc[0]);
                acc[1] = _mm256_fmadd_ps(xb, w[1], acc[1]);
            }
        }
        let mut sum = [0f32; 8];
        let mut s = _mm256_setzero_ps();
        for a in acc.iter().flatten() {
            s = _mm256_add_ps(s, *a);
        }
        _mm256_storeu_ps(sum.as_mut_ptr(), s);
        sum.iter().sum()
    }

    #[target_feature(enable = "avx2")]
    unsafe fn fold(acc: [[__m256i; 2]; ROWS]) -> i32 {
        let mut s = _mm256_setzero_si256();
        for a in acc.iter().flatten() {
            s = _mm256_add_epi32(s, *a);
        }
        _mm256_extract_epi32::<0>(s)
    }

    /// Products per step of each route.
    pub const MADD_PRODUCTS: f64 = (ROWS * 2 * 16) as f64;
    pub const MADDUBS_PRODUCTS: f64 = (ROWS * 2 * 32) as f64;
    pub const FMA_PRODUCTS: f64 = (ROWS * 2 * 8) as f64;
}

#[cfg(target_arch = "x86_64")]
fn main() {
    use std::time::Instant;
    if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
        println!("this CPU has no AVX2 + FMA");
        return;
    }
    let steps = 50_000_000;
    let time = |f: &dyn Fn() -> f64, products: f64| {
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let start = Instant::now();
            std::hint::black_box(f());
            best = best.min(start.elapsed().as_secs_f64());
        }
        steps as f64 * products / best / 1e9
    };
    // SAFETY: AVX2 and FMA were detected above.
    let madd = time(
        &|| unsafe { routes::madd_i16(steps) } as f64,
        routes::MADD_PRODUCTS,
    );
    let maddubs = time(
        &|| unsafe { routes::maddubs_u8(steps) } as f64,
        routes::MADDUBS_PRODUCTS,
    );
    let fma = time(
        &|| unsafe { routes::fma_f32(steps) } as f64,
        routes::FMA_PRODUCTS,
    );
    println!("GMAC/s on one thread (best of 3), ratio to f32 FMA:");
    println!("  f32 vfmadd231ps          {fma:6.1}  1.00x");
    println!("  i16 vpmaddwd             {madd:6.1}  {:.2}x", madd / fma);
    println!(
        "  u8xi8 vpmaddubsw+vpmaddwd {maddubs:6.1}  {:.2}x",
        maddubs / fma
    );
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    println!("x86_64 only");
}

//! Cosine similarity between two sets of embeddings.

use rayon::prelude::*;

use crate::error::{Error, Result};

/// `a`: (n, dim), `b`: (m, dim), row-major. Returns the (n, m) cosine matrix. A zero
/// vector has similarity 0 with everything (rather than NaN).
pub fn cosine_matrix(a: &[f32], b: &[f32], dim: usize) -> Result<Vec<f32>> {
    if dim == 0 || !a.len().is_multiple_of(dim) || !b.len().is_multiple_of(dim) {
        return Err(Error::invalid(format!(
            "embeddings of sizes {} and {} are not rows of dimension {dim}",
            a.len(),
            b.len()
        )));
    }
    let norms = |x: &[f32]| -> Vec<f32> {
        x.chunks(dim)
            .map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12))
            .collect()
    };
    let (na, nb) = (norms(a), norms(b));
    let m = nb.len();
    let mut out = vec![0f32; na.len() * m];
    out.par_chunks_mut(m.max(1))
        .zip(a.par_chunks(dim))
        .zip(na.par_iter())
        .for_each(|((row, x), nx)| {
            for (j, (y, ny)) in b.chunks(dim).zip(&nb).enumerate() {
                let dot: f32 = x.iter().zip(y).map(|(p, q)| p * q).sum();
                row[j] = dot / (nx * ny);
            }
        });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_known_vectors() {
        let a = [1.0, 0.0, 0.0, 2.0];
        let b = [3.0, 0.0, 1.0, 1.0, 0.0, 0.0];
        let s = cosine_matrix(&a, &b, 2).unwrap();
        let r = std::f32::consts::FRAC_1_SQRT_2;
        assert_eq!(s.len(), 6);
        assert!((s[0] - 1.0).abs() < 1e-6 && (s[1] - r).abs() < 1e-6 && s[2] == 0.0);
        assert!(s[3].abs() < 1e-6 && (s[4] - r).abs() < 1e-6);
    }
}

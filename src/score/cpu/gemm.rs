//! A safe face over the `gemm` crate for row-major f32 matrices with arbitrary row strides.
//! Every view is bounds-checked before the raw-pointer call, so a wrong shape is a panic
//! (a bug in this crate), never memory corruption.

use gemm::Parallelism;

/// A read-only matrix view: element (r, c) is `data[r * row_stride + c]`.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
}

impl<'a> Mat<'a> {
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
        }
    }

    /// Columns `col..col + cols` of rows `row..row + rows`.
    pub fn block(self, row: usize, rows: usize, col: usize, cols: usize) -> Self {
        assert!(
            row + rows <= self.rows && col + cols <= self.cols,
            "block out of range"
        );
        let start = row * self.row_stride + col;
        Self {
            data: &self.data[start.min(self.data.len())..],
            rows,
            cols,
            row_stride: self.row_stride,
        }
    }

    fn check(&self) {
        if self.rows > 0 && self.cols > 0 {
            assert!(
                self.cols <= self.row_stride || self.rows == 1,
                "row stride smaller than a row"
            );
            assert!(
                (self.rows - 1) * self.row_stride + self.cols <= self.data.len(),
                "matrix view out of bounds"
            );
        }
    }
}

/// A writable matrix view with the same layout rules as [`Mat`].
pub struct MatMut<'a> {
    pub data: &'a mut [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
}

impl<'a> MatMut<'a> {
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
        }
    }

    fn check(&self) {
        if self.rows > 0 && self.cols > 0 {
            assert!(
                self.cols <= self.row_stride || self.rows == 1,
                "row stride smaller than a row"
            );
            assert!(
                (self.rows - 1) * self.row_stride + self.cols <= self.data.len(),
                "matrix view out of bounds"
            );
        }
    }
}

/// How `b` is read: as stored (k x n), or transposed (stored n x k, as PyTorch's
/// `Linear.weight` is).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum B {
    AsIs,
    Transposed,
}

/// `dst = scale * a @ op(b)` (or `dst += ...` with `accumulate`).
/// `threads > 1` splits the product across the rayon pool.
pub fn matmul(
    dst: MatMut<'_>,
    a: Mat<'_>,
    b: Mat<'_>,
    b_op: B,
    scale: f32,
    accumulate: bool,
    threads: usize,
) {
    dst.check();
    a.check();
    b.check();
    let (m, k) = (a.rows, a.cols);
    let (bk, n, b_rs, b_cs) = match b_op {
        B::AsIs => (b.rows, b.cols, b.row_stride as isize, 1isize),
        B::Transposed => (b.cols, b.rows, 1isize, b.row_stride as isize),
    };
    assert_eq!(k, bk, "inner dimensions differ");
    assert!(dst.rows == m && dst.cols == n, "destination shape");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst.data[r * dst.row_stride..r * dst.row_stride + n].fill(0.0);
            }
        }
        return;
    }
    let parallelism = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: all three views were bounds-checked above for the strides passed here, `dst`
    // is borrowed mutably (no aliasing with `a` or `b`), and gemm reads/writes only
    // elements (i, j) with i < rows and j < cols of each view.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            1,
            dst.row_stride as isize,
            accumulate,
            a.data.as_ptr(),
            1,
            a.row_stride as isize,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        out
    }

    #[test]
    fn matches_naive_product_for_both_layouts() {
        let (m, k, n) = (7, 5, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let want = naive(&a, &b, m, k, n);
        let mut got = vec![0.0; m * n];
        matmul(
            MatMut::new(&mut got, m, n),
            Mat::new(&a, m, k),
            Mat::new(&b, k, n),
            B::AsIs,
            1.0,
            false,
            1,
        );
        want.iter()
            .zip(&got)
            .for_each(|(x, y)| assert!((x - y).abs() < 1e-5));
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect(); // (n, k)
        let mut got2 = vec![1.0; m * n];
        matmul(
            MatMut::new(&mut got2, m, n),
            Mat::new(&a, m, k),
            Mat::new(&bt, n, k),
            B::Transposed,
            2.0,
            true,
            2,
        );
        want.iter()
            .zip(&got2)
            .for_each(|(x, y)| assert!((1.0 + 2.0 * x - y).abs() < 1e-5));
    }

    #[test]
    fn strided_blocks() {
        // a 4x6 buffer; multiply its 2x3 block at (1, 2) by identity
        let buf: Vec<f32> = (0..24).map(|i| i as f32).collect();
        let eye = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        let mut out = vec![0.0; 6];
        let a = Mat {
            data: &buf,
            rows: 4,
            cols: 6,
            row_stride: 6,
        }
        .block(1, 2, 2, 3);
        matmul(
            MatMut::new(&mut out, 2, 3),
            a,
            Mat::new(&eye, 3, 3),
            B::AsIs,
            1.0,
            false,
            1,
        );
        assert_eq!(out, vec![8.0, 9.0, 10.0, 14.0, 15.0, 16.0]);
    }
}

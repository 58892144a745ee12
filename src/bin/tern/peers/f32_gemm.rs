//! The f32 baseline of `bench --peers`: a cache-blocked, register-tiled f32 GEMM, the way an
//! f32 BLAS does it, so that the ternary formats are compared with a real f32 kernel.
//!
//! The weights are packed once into panels of `P` rows stored k-major (`panel[k·P + j]` is row
//! `p·P + j`, column `k`; rows past the end are zeros). A micro-kernel keeps a tile of up to
//! `NT` tokens × `P` rows in registers (12 vector accumulators) and per column loads the
//! panel's `P` weights and broadcasts one activation per token. The columns are walked in blocks
//! whose panel slice fits L1, so the slice is reused from L1 by every token tile while the
//! activations stream from L2.

/// Tokens per register tile: 6 × 2 accumulators + 2 weight vectors + 1 broadcast fit the 16
/// vector registers of AVX2.
const NT: usize = 6;
/// Widest panel (AVX-512: two zmm).
const P_MAX: usize = 32;
/// Bytes of a panel slice held in L1 while the token tiles reuse it.
const L1_SLICE: usize = 16 << 10;

/// A tile's accumulators as the micro-kernels load and store them.
type Tile = [[f32; P_MAX]; NT];

/// The f32 weights, packed for the micro-kernel of this CPU.
pub struct F32Matrix {
    panels: Vec<f32>,
    rows: usize,
    cols: usize,
    /// Rows per panel: 32 with AVX-512F, else 16.
    p: usize,
}

/// What the baseline runs on this CPU.
pub fn kernel_name() -> &'static str {
    match width() {
        32 => "AVX-512 FMA 6x32 tiles",
        _ if has_fma() => "AVX2 FMA 6x16 tiles",
        _ => "portable 6x16 tiles",
    }
}

fn width() -> usize {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        return 32;
    }
    16
}

fn has_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl F32Matrix {
    /// Packs row-major `rows × cols` weights.
    pub fn new(w: &[f32], rows: usize, cols: usize) -> Self {
        let p = width();
        let n_panels = rows.div_ceil(p);
        let mut panels = vec![0f32; n_panels * p * cols];
        for (r, row) in w.chunks_exact(cols).enumerate().take(rows) {
            let panel = &mut panels[(r / p) * p * cols..][..p * cols];
            for (k, &v) in row.iter().enumerate() {
                panel[k * p + r % p] = v;
            }
        }
        Self {
            panels,
            rows,
            cols,
            p,
        }
    }

    /// The packed weights as the kernel streams them.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: any f32 bytes are valid u8s, and u8 has no alignment to meet.
        unsafe { self.panels.align_to::<u8>().1 }
    }

    /// `y[t·rows + r] = Σ_k w[r·cols + k]·x[t·cols + k]`, panels split over the context's
    /// threads.
    pub fn gemm(&self, ctx: &tern::context::Context, x: &[f32], tokens: usize, y: &mut [f32]) {
        let (rows, cols, p) = (self.rows, self.cols, self.p);
        assert!(x.len() >= tokens * cols && y.len() >= tokens * rows);
        let n_panels = rows.div_ceil(p);
        let n_tasks = n_panels.min(4 * ctx.threads.count());
        let kc = (L1_SLICE / (4 * p)).min(cols).max(1);
        let out = y.as_mut_ptr() as usize;
        ctx.threads.for_each(n_tasks, |i| {
            let (p0, p1) = (n_panels * i / n_tasks, n_panels * (i + 1) / n_tasks);
            let mut tile: Tile = [[0.0; P_MAX]; NT];
            for k0 in (0..cols).step_by(kc) {
                let kn = kc.min(cols - k0);
                for pi in p0..p1 {
                    let panel = &self.panels[pi * p * cols + k0 * p..][..kn * p];
                    let (r0, nr) = (pi * p, p.min(rows - pi * p));
                    for t0 in (0..tokens).step_by(NT) {
                        let nt = NT.min(tokens - t0);
                        for (t, row) in tile.iter_mut().enumerate().take(nt) {
                            let row = &mut row[..nr];
                            if k0 == 0 {
                                row.fill(0.0);
                            } else {
                                // SAFETY: this task alone writes rows r0..r0+nr of every token.
                                let yr = unsafe {
                                    std::slice::from_raw_parts(
                                        (out as *const f32).add((t0 + t) * rows + r0),
                                        nr,
                                    )
                                };
                                row.copy_from_slice(yr);
                            }
                        }
                        let xs = &x[t0 * cols + k0..];
                        micro_kernel(panel, p, kn, xs, cols, nt, &mut tile);
                        for (t, row) in tile.iter().enumerate().take(nt) {
                            // SAFETY: as above.
                            let yr = unsafe {
                                std::slice::from_raw_parts_mut(
                                    (out as *mut f32).add((t0 + t) * rows + r0),
                                    nr,
                                )
                            };
                            yr.copy_from_slice(&row[..nr]);
                        }
                    }
                }
            }
        });
    }
}

/// `tile[t][j] += Σ_{k<kn} panel[k·p + j]·x[t·stride + k]` for `t < nt`, `j < p`.
fn micro_kernel(
    panel: &[f32],
    p: usize,
    kn: usize,
    x: &[f32],
    stride: usize,
    nt: usize,
    tile: &mut Tile,
) {
    assert!(panel.len() >= kn * p && x.len() >= (nt - 1) * stride + kn && nt <= NT);
    #[cfg(target_arch = "x86_64")]
    {
        if p == 32 {
            // SAFETY: AVX-512F present (p is 32 only then); bounds asserted above.
            unsafe { x86::tile_zmm(panel.as_ptr(), kn, x.as_ptr(), stride, nt, tile) };
            return;
        }
        if has_fma() {
            // SAFETY: AVX2 and FMA present; bounds asserted above.
            unsafe { x86::tile_ymm(panel.as_ptr(), kn, x.as_ptr(), stride, nt, tile) };
            return;
        }
    }
    for k in 0..kn {
        let w = &panel[k * p..][..p];
        for t in 0..nt {
            let xv = x[t * stride + k];
            for (c, &wv) in tile[t][..p].iter_mut().zip(w) {
                *c += wv * xv;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{NT, Tile};

    /// One micro-kernel per token count, so the accumulators stay in registers.
    macro_rules! dispatch {
        ($f:ident, $nt:expr, $($args:expr),*) => {
            match $nt {
                1 => $f::<1>($($args),*),
                2 => $f::<2>($($args),*),
                3 => $f::<3>($($args),*),
                4 => $f::<4>($($args),*),
                5 => $f::<5>($($args),*),
                _ => $f::<NT>($($args),*),
            }
        };
    }

    /// # Safety
    /// AVX2 and FMA; `w` holds `kn·16` floats, `x` holds `nt` rows of `kn` at `stride`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tile_ymm(
        w: *const f32,
        kn: usize,
        x: *const f32,
        stride: usize,
        nt: usize,
        tile: &mut Tile,
    ) {
        // SAFETY: forwarded from the caller.
        unsafe { dispatch!(ymm, nt, w, kn, x, stride, tile) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn ymm<const T: usize>(
        w: *const f32,
        kn: usize,
        x: *const f32,
        stride: usize,
        tile: &mut Tile,
    ) {
        // SAFETY: in bounds by the caller's contract (`tile_ymm`).
        unsafe {
            let mut acc: [[__m256; 2]; T] = std::array::from_fn(|t| {
                let c = tile[t].as_ptr();
                [_mm256_loadu_ps(c), _mm256_loadu_ps(c.add(8))]
            });
            for k in 0..kn {
                let w0 = _mm256_loadu_ps(w.add(16 * k));
                let w1 = _mm256_loadu_ps(w.add(16 * k + 8));
                for (t, a) in acc.iter_mut().enumerate() {
                    let xv = _mm256_broadcast_ss(&*x.add(t * stride + k));
                    a[0] = _mm256_fmadd_ps(w0, xv, a[0]);
                    a[1] = _mm256_fmadd_ps(w1, xv, a[1]);
                }
            }
            for (t, a) in acc.iter().enumerate() {
                let c = tile[t].as_mut_ptr();
                _mm256_storeu_ps(c, a[0]);
                _mm256_storeu_ps(c.add(8), a[1]);
            }
        }
    }

    /// # Safety
    /// AVX-512F; `w` holds `kn·32` floats, `x` holds `nt` rows of `kn` at `stride`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn tile_zmm(
        w: *const f32,
        kn: usize,
        x: *const f32,
        stride: usize,
        nt: usize,
        tile: &mut Tile,
    ) {
        // SAFETY: forwarded from the caller.
        unsafe { dispatch!(zmm, nt, w, kn, x, stride, tile) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn zmm<const T: usize>(
        w: *const f32,
        kn: usize,
        x: *const f32,
        stride: usize,
        tile: &mut Tile,
    ) {
        // SAFETY: in bounds by the caller's contract (`tile_zmm`).
        unsafe {
            let mut acc: [[__m512; 2]; T] = std::array::from_fn(|t| {
                let c = tile[t].as_ptr();
                [_mm512_loadu_ps(c), _mm512_loadu_ps(c.add(16))]
            });
            for k in 0..kn {
                let w0 = _mm512_loadu_ps(w.add(32 * k));
                let w1 = _mm512_loadu_ps(w.add(32 * k + 16));
                for (t, a) in acc.iter_mut().enumerate() {
                    let xv = _mm512_set1_ps(*x.add(t * stride + k));
                    a[0] = _mm512_fmadd_ps(w0, xv, a[0]);
                    a[1] = _mm512_fmadd_ps(w1, xv, a[1]);
                }
            }
            for (t, a) in acc.iter().enumerate() {
                let c = tile[t].as_mut_ptr();
                _mm512_storeu_ps(c, a[0]);
                _mm512_storeu_ps(c.add(16), a[1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tile shape (token and row tails, several column blocks) against a plain dot.
    #[test]
    fn matches_plain_dot_products() {
        let ctx = tern::context::Context::new(0, 2).unwrap();
        for (rows, cols, tokens) in [(37, 300, 13), (16, 8, 1), (5, 1000, 7), (64, 4100, 6)] {
            let w: Vec<f32> = (0..rows * cols)
                .map(|i| ((i * 7) % 13) as f32 - 6.0)
                .collect();
            let x: Vec<f32> = (0..tokens * cols)
                .map(|i| ((i * 5) % 11) as f32 - 5.0)
                .collect();
            let m = F32Matrix::new(&w, rows, cols);
            let mut y = vec![f32::NAN; tokens * rows];
            m.gemm(&ctx, &x, tokens, &mut y);
            for t in 0..tokens {
                for r in 0..rows {
                    let want: f32 = (0..cols).map(|k| w[r * cols + k] * x[t * cols + k]).sum();
                    // Small integers: every partial sum is exact in f32.
                    assert_eq!(y[t * rows + r], want, "{rows}x{cols} t{tokens} ({t}, {r})");
                }
            }
        }
    }
}

//! The scalar reference of bitnet.cpp's TL2 kernels: the activation LUTs (`three_lut_ctor`,
//! `two_lut_ctor`) and the GEMV over them (`three_qgemm_lut` + `two_qgemm_lut`), for tests.

use super::super::tl_common::{fold_blocks, pair_entries_i32, round_up};
use super::{TWO_BK, Tiling, decode_signs, dims, each_three, each_two};
use crate::format::Shape;

/// `127 / max|x|` as the AVX2 `per_tensor_quant` computes it (f32, no epsilon; NaNs are skipped
/// like `_mm256_max_ps` does, all-zero `x` gives +inf).
pub fn lut_scale(x: &[f32]) -> f32 {
    let max = x
        .iter()
        .fold(0.0f32, |m, v| if v.abs() > m { v.abs() } else { m });
    127.0 / max
}

/// One activation as the LUT builders quantise it: `_mm256_cvtps_epi32(_mm256_round_ps(x·s))`
/// (nearest, ties to even; NaN or out of int32 range → `i32::MIN`).
fn quantize(x: f32, lut_scale: f32) -> i32 {
    let v = (x * lut_scale).round_ties_even();
    if v.is_nan() || !(-2_147_483_648.0..2_147_483_648.0).contains(&v) {
        i32::MIN
    } else {
        v as i32
    }
}

/// `_mm256_packs_epi32`: int32 → int16 with saturation.
fn saturate(v: i32) -> i16 {
    v.clamp(i16::MIN as i32, i16::MAX as i32) as i16
}

fn triple_table(b0: i32, b1: i32, b2: i32) -> [i16; 16] {
    let (add, sub) = (i32::wrapping_add, i32::wrapping_sub);
    let e = [
        0,
        b2,
        sub(b1, b2),
        b1,
        add(b1, b2),
        sub(sub(b0, b1), b2),
        sub(b0, b1),
        add(sub(b0, b1), b2),
        sub(b0, b2),
        b0,
        add(b0, b2),
        sub(add(b0, b1), b2),
        add(b0, b1),
        add(add(b0, b1), b2),
        0,
        0,
    ];
    e.map(saturate)
}

fn two_table(b0: i32, b1: i32) -> [i16; 16] {
    pair_entries_i32(b0, b1).map(saturate)
}

fn write_lut(tables: impl Iterator<Item = [i16; 16]>, lut: &mut [u8]) {
    for (e, out) in tables.zip(lut.chunks_exact_mut(32)) {
        for (i, v) in e.iter().enumerate() {
            let [lo, hi] = v.to_le_bytes();
            out[i] = lo;
            out[16 + i] = hi;
        }
    }
}

/// Builds one token's three-LUT as `three_lut_ctor` does: `x` holds the `three_k` activations
/// (a multiple of 3), `lut` is `x.len()/3·32` bytes: per triple 16 low bytes then 16 high bytes.
pub fn build_three_lut(x: &[f32], lut_scale: f32, lut: &mut [u8]) {
    assert!(
        x.len().is_multiple_of(3),
        "TL2 build_three_lut: activation count not a multiple of 3"
    );
    assert_eq!(
        lut.len(),
        x.len() / 3 * 32,
        "TL2 build_three_lut: lut must be 32 bytes per triple"
    );
    let q = |v: f32| quantize(v, lut_scale);
    write_lut(
        x.chunks_exact(3)
            .map(|b| triple_table(q(b[0]), q(b[1]), q(b[2]))),
        lut,
    );
}

/// Builds one token's two-LUT as `two_lut_ctor` does: `x` holds the `two_k` activations (even),
/// `lut` is `x.len()/2·32` bytes: per pair 16 low bytes then 16 high bytes (entries 9..15 zero).
pub fn build_two_lut(x: &[f32], lut_scale: f32, lut: &mut [u8]) {
    assert!(
        x.len().is_multiple_of(2),
        "TL2 build_two_lut: odd activation count"
    );
    assert_eq!(
        lut.len(),
        x.len() / 2 * 32,
        "TL2 build_two_lut: lut must be 32 bytes per pair"
    );
    let q = |v: f32| quantize(v, lut_scale);
    write_lut(x.chunks_exact(2).map(|b| two_table(q(b[0]), q(b[1]))), lut);
}

/// Scalar reference of the TL2 kernels (batch 1) for one token: `x` holds `cols` activations, `y`
/// receives `rows` outputs, `packed` is a buffer that passed `validate` (any bytes are safe).
/// Bit-exact with bitnet.cpp's `three_qgemm_lut` + `two_qgemm_lut`.
pub fn lut_gemv(t: &Tiling, shape: Shape, packed: &[u8], x: &[f32], y: &mut [f32]) {
    let (m, k) = (shape.rows, shape.cols);
    let d = dims(t, shape);
    let x = &x[..k];
    let s = lut_scale(x);
    let q: Vec<i32> = (0..d.cols)
        .map(|c| quantize(if c < k { x[c] } else { 0.0 }, s))
        .collect();
    let three: Vec<[i16; 16]> = q[..d.three_k]
        .chunks_exact(3)
        .map(|b| triple_table(b[0], b[1], b[2]))
        .collect();
    let two: Vec<[i16; 16]> = q[d.three_k..]
        .chunks_exact(2)
        .map(|b| two_table(b[0], b[1]))
        .collect();
    let off = round_up(d.payload_bytes(), 32);
    let w_scale = f32::from_le_bytes(packed[off..off + 4].try_into().expect("4 bytes"));

    let groups = d.three_k / 3;
    // A reference for tests, not on a path of the C API.
    let neg = decode_signs(t, &d, packed).unwrap_or_else(|e| panic!("{e}"));
    let blocks3 = d.three_k / t.tile_k;
    let groups_per_block = t.tile_k / 3;
    let mut block3 = vec![0i32; d.rows * blocks3];
    each_three(t, &d, |b, r, g| {
        let byte = packed[b];
        for (gg, nib) in [(g, byte >> 4), (g + 1, byte & 15)] {
            let e = three[gg][nib as usize];
            let e = if neg[r * groups + gg] {
                e.wrapping_neg()
            } else {
                e
            };
            block3[r * blocks3 + gg / groups_per_block] += e as i32;
        }
    });
    let blocks2 = d.two_k / TWO_BK;
    let pair0 = d.three_k / 2;
    let mut block2 = vec![0i32; d.rows * blocks2];
    each_two(t, &d, |b, r, p| {
        let byte = packed[b];
        let p = p - pair0;
        let e = two[p][(byte >> 4) as usize] as i32 + two[p + 1][(byte & 15) as usize] as i32;
        block2[r * blocks2 + p / (TWO_BK / 2)] += e;
    });
    let (mut sum3, mut sum2) = (vec![0i32; m], vec![0i32; m]);
    fold_blocks(&block3, blocks3, m, &mut sum3);
    fold_blocks(&block2, blocks2, m, &mut sum2);
    for ((out, a), b) in y[..m].iter_mut().zip(sum3).zip(sum2) {
        *out = a.wrapping_add(b) as f32 / s * w_scale;
    }
}

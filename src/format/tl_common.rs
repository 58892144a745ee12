//! Pieces shared by the TL1 and TL2 modules: the tiling triple, the activation quantisation of the
//! LUT builders, and small helpers for sizes, messages and buffer checks.

use crate::error::{Error, Result};

/// A bitnet.cpp LUT-kernel tiling (`kernel_config.ini` keys `bm`, `bk`, `bmm`).
///
/// ```
/// use tern::{Layout, Shape};
///
/// // With `None` the library picks a tiling for each shape (bitnet.cpp's for its model shapes).
/// let t = Layout::Tl1(None).tiling(Shape::new(256, 256)?)?.expect("TL1 has a tiling");
/// assert!(t.tile_rows > 0 && t.tile_k > 0 && t.simd_rows > 0);
/// # Ok::<(), tern::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiling {
    /// `BM`: rows per tile (tiles are independent units of work).
    pub tile_rows: usize,
    /// `BK`: columns per K block (one block's partial sums are int16 in the kernels).
    pub tile_k: usize,
    /// `bm`: rows handled by one SIMD step (TL1 32 or 64, TL2 32).
    pub simd_rows: usize,
}

impl Tiling {
    /// A tiling of `tile_rows` (`BM`), `tile_k` (`BK`) and `simd_rows` (`bm`); checked against
    /// a shape when a layout uses it.
    pub const fn new(tile_rows: usize, tile_k: usize, simd_rows: usize) -> Self {
        Self {
            tile_rows,
            tile_k,
            simd_rows,
        }
    }
}

/// Maps an 8-byte slot of a 32-byte chunk to an 8-row group (TL2 three and two parts); self-inverse.
pub(crate) const PERM: [usize; 4] = [0, 2, 1, 3];

/// Bytes after the payload: the f32 scale and 28 zero bytes.
pub(crate) const TAIL_BYTES: usize = 32;

pub(crate) fn round_up(x: usize, m: usize) -> usize {
    x.div_ceil(m) * m
}

pub(crate) fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The largest multiple of `step` that divides `n` and is at most `max` (`step` if none is).
pub(crate) fn largest_divisor_multiple(n: usize, step: usize, max: usize) -> usize {
    (1..=max / step)
        .rev()
        .map(|i| i * step)
        .find(|d| n.is_multiple_of(*d))
        .unwrap_or(step)
}

/// Formats a list of allowed values for an error message, shortened when long.
pub(crate) fn list(values: &[usize]) -> String {
    const SHOWN: usize = 12;
    let mut s = values
        .iter()
        .take(SHOWN)
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if values.len() > SHOWN {
        s.push_str(&format!(", … ({} values)", values.len()));
    }
    s
}

/// Multiples of `step` that divide `n` (ascending), at most `max`.
pub(crate) fn divisor_multiples(n: usize, step: usize, max: usize) -> Vec<usize> {
    (1..=max.min(n) / step)
        .map(|i| i * step)
        .filter(|d| n.is_multiple_of(*d))
        .collect()
}

/// Checks that a padded `rows × cols` matrix keeps the sizes addressable.
pub(crate) fn check_padded(name: &str, rows: usize, cols: usize) -> Result<()> {
    match rows.checked_mul(cols) {
        Some(n) if n <= isize::MAX as usize / 4 => Ok(()),
        _ => Err(Error::invalid(format!(
            "{name}: the padded matrix {rows}×{cols} overflows the addressable size"
        ))),
    }
}

/// Reads the f32 scale at `offset`, checks it and the 28 zero bytes after it.
pub(crate) fn check_scale_tail(name: &str, src: &[u8], offset: usize) -> Result<f32> {
    let scale = f32::from_le_bytes(src[offset..offset + 4].try_into().expect("4 bytes"));
    if !scale.is_finite() || scale < 0.0 {
        return Err(Error::invalid(format!(
            "corrupt {name} data: the tensor scale at byte {offset} is {scale}, expected a finite value >= 0"
        )));
    }
    check_zero(
        name,
        src,
        offset + 4,
        offset + TAIL_BYTES,
        "the reserved bytes after the scale",
    )?;
    Ok(scale)
}

/// Bytes `[from, to)` of `src` must be zero.
pub(crate) fn check_zero(name: &str, src: &[u8], from: usize, to: usize, what: &str) -> Result<()> {
    match src[from..to].iter().position(|&b| b != 0) {
        Some(i) => Err(Error::invalid(format!(
            "corrupt {name} data: byte {} is {:#04x} but lies in {what} (bytes {from}..{to}), which must be zero",
            from + i,
            src[from + i]
        ))),
        None => Ok(()),
    }
}

pub(crate) fn check_len(name: &str, src: &[u8], size: usize) -> Result<()> {
    if src.len() < size {
        return Err(Error::too_small(&format!("{name} buffer"), src.len(), size));
    }
    Ok(())
}

/// Ternary digits of a pair index `3·w0 + w1 + 4` (0..=8).
pub(crate) fn pair_digits(idx: u8) -> (i8, i8) {
    ((idx / 3) as i8 - 1, (idx % 3) as i8 - 1)
}

pub(crate) fn pair_index(w0: i8, w1: i8) -> u8 {
    (3 * w0 + w1 + 4) as u8
}

/// The pair table of §3.2 for activations `(b0, b1)`, entries 9..15 zero, in wrapping arithmetic
/// of the integer type the kernel uses.
pub(crate) fn pair_entries_i32(b0: i32, b1: i32) -> [i32; 16] {
    let mut e = [0i32; 16];
    e[0] = 0i32.wrapping_sub(b0).wrapping_sub(b1);
    e[1] = 0i32.wrapping_sub(b0);
    e[2] = 0i32.wrapping_sub(b0).wrapping_add(b1);
    e[3] = 0i32.wrapping_sub(b1);
    e[5] = b1;
    e[6] = b0.wrapping_sub(b1);
    e[7] = b0;
    e[8] = b0.wrapping_add(b1);
    e
}

/// Adds per-(row, block) int16 partial sums into int32 row sums the way the kernels do: each
/// block sum wraps to int16 (it cannot for the allowed BK), then is widened and accumulated.
pub(crate) fn fold_blocks(block_sums: &[i32], blocks: usize, rows: usize, out: &mut [i32]) {
    for (r, o) in out.iter_mut().enumerate().take(rows) {
        *o = block_sums[r * blocks..(r + 1) * blocks]
            .iter()
            .fold(0i32, |acc, &s| acc.wrapping_add(s as i16 as i32));
    }
}

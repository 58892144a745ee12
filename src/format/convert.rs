//! Conversion of a packed matrix between any two layouts, refusing every change to a weight.
//!
//! The weights are `value · scale`; a conversion keeps each one exactly or fails:
//! * **Values.** The target must hold every value: the ternary formats hold −1, 0, +1, Q2_0 also
//!   +2 (its code 3), Q1_0 only ±1 (so anything with a 0 is refused). A negative scale (Q2_0 and
//!   Q1_0 store ggml's signed f16 `d`) is first folded into the signs of its block's values, as
//!   the other formats' scales are ≥ 0 (`(−v)·|d| = v·d`).
//! * **Scales.** Where the target shares one scale over several source blocks (one per tensor,
//!   or TQ's 256 elements over Q2_0's 64), those blocks' scales must be equal — blocks whose
//!   values are all 0 aside, since their scale multiplies nothing. Targets with f16 scales need
//!   every scale exact in f16 unless `allow_rounding` (round to nearest even, as ggml does).
//!
//! Every refusal names the first offending place: the row, the block index within the row
//! (of the per-block format involved) and the value or scales found. On error `dst` is untouched.

use half::f16;

use super::{Layout, Shape};
use crate::error::{Error, Result, try_collect, try_reserve, try_vec};

/// Converts a packed `shape` matrix from layout `from` to layout `to` (module doc). On error `dst`
/// is untouched.
pub fn convert(
    from: Layout,
    to: Layout,
    shape: Shape,
    src: &[u8],
    dst: &mut [u8],
    allow_rounding: bool,
) -> Result<()> {
    let mut scales = from.validate(shape, src)?;
    to.check_shape(shape)?;
    let per_from = from.elements_per_scale(shape);
    if from == to && scales.iter().any(|&s| s < 0.0) {
        // A signed scale, which only the source's own format stores: its bytes are the answer.
        let size = to.packed_size(shape)?;
        dst[..size].copy_from_slice(&src[..size]);
        return Ok(());
    }
    let mut values = try_vec(shape.elements(), 0i8, "the unpacked values")?;
    from.unpack(shape, src, &mut values)?;
    fold_signs(&mut values, &mut scales, per_from);
    let at = Places {
        shape,
        from,
        to,
        per_from,
    };
    if let Some(i) = first_not_held(to, &values) {
        return Err(Error::invalid(format!(
            "{}: {} holds only {}, but {} has the value {}; converting would lose information",
            at.what(),
            to.format().name(),
            to.spec().values.allowed(),
            at.place(i, at.value_block()),
            values[i]
        )));
    }
    let to_scales = target_scales(&at, &values, &scales)?;
    if to.spec().f16_scales
        && !allow_rounding
        && let Some(i) = to_scales
            .iter()
            .position(|&s| f32::from(f16::from_f32(s)) != s)
    {
        let per_to = to.elements_per_scale(shape);
        return Err(Error::invalid(format!(
            "{}: the scale {} of {} is not representable in {}'s f16 scales (nearest {}); set allow_rounding to accept the rounding",
            at.what(),
            to_scales[i],
            at.place(i * per_to, per_to.min(shape.cols)),
            to.format().name(),
            f32::from(f16::from_f32(to_scales[i]))
        )));
    }
    to.pack(shape, &values, &to_scales, dst)
}

/// Makes every scale ≥ 0 by flipping the signs of its `per` values where it is negative.
fn fold_signs(values: &mut [i8], scales: &mut [f32], per: usize) {
    for (block, s) in values.chunks_mut(per).zip(scales.iter_mut()) {
        if *s < 0.0 {
            *s = -*s;
            block.iter_mut().for_each(|v| *v = -*v);
        }
    }
}

/// The first value `to` cannot store.
fn first_not_held(to: Layout, values: &[i8]) -> Option<usize> {
    let kind = to.spec().values;
    // Blocks are tested without an early exit, so the test vectorizes.
    const BLOCK: usize = 4096;
    let (b, chunk) = values
        .chunks(BLOCK)
        .enumerate()
        .find(|(_, c)| !c.iter().fold(true, |ok, &v| ok & kind.holds(v)))?;
    Some(b * BLOCK + chunk.iter().position(|&v| !kind.holds(v))?)
}

/// Where things are, for messages.
struct Places {
    shape: Shape,
    from: Layout,
    to: Layout,
    per_from: usize,
}

impl Places {
    /// "Q2_0 -> I2_S".
    fn what(&self) -> String {
        format!(
            "{} -> {}",
            self.from.format().name(),
            self.to.format().name()
        )
    }

    /// The block length that locates a value: the target's block if it has per-block scales,
    /// else the source's, else the whole row.
    fn value_block(&self) -> usize {
        let per_to = self.to.elements_per_scale(self.shape);
        [per_to, self.per_from]
            .into_iter()
            .find(|&p| p < self.shape.elements())
            .unwrap_or(self.shape.cols)
            .min(self.shape.cols)
    }

    /// "row 3, block 2 of 64 elements (column 130)" for element `i` with `block`-long blocks.
    fn place(&self, i: usize, block: usize) -> String {
        let (row, col) = (i / self.shape.cols, i % self.shape.cols);
        format!(
            "row {row}, block {} of {block} elements (column {col})",
            col / block
        )
    }
}

/// The scales the target stores: one per target block, each taken from the source blocks it
/// covers (which must agree, all-zero blocks aside) or repeated over the target blocks that one
/// source block covers.
fn target_scales(at: &Places, values: &[i8], scales: &[f32]) -> Result<Vec<f32>> {
    let (shape, per_from) = (at.shape, at.per_from);
    let per_to = at.to.elements_per_scale(shape);
    if per_to < per_from {
        return try_collect(
            (0..shape.elements() / per_to).map(|i| scales[i * per_to / per_from]),
            "the converted scales",
        );
    }
    let merged = per_to / per_from;
    let mut out = Vec::new();
    try_reserve(&mut out, scales.len() / merged, "the converted scales")?;
    for (g, (group, vals)) in scales.chunks(merged).zip(values.chunks(per_to)).enumerate() {
        out.push(merge(at, g * merged, group, vals)?);
    }
    Ok(out)
}

/// One target scale from the source blocks `first..first + group.len()` (values `vals`): their
/// common scale, ignoring blocks of zeros (all blocks zero: the first block's scale).
fn merge(at: &Places, first: usize, group: &[f32], vals: &[i8]) -> Result<f32> {
    let per = at.per_from;
    let mut nonzero = group
        .iter()
        .zip(vals.chunks(per))
        .enumerate()
        .filter(|(_, (_, v))| v.iter().any(|&v| v != 0))
        .map(|(j, (&s, _))| (first + j, s));
    let Some((a, sa)) = nonzero.next() else {
        return Ok(group[0]);
    };
    if let Some((b, sb)) = nonzero.find(|&(_, s)| s != sa) {
        let block = per.min(at.shape.cols);
        let per_to = at.to.elements_per_scale(at.shape);
        let shared = if per_to == at.shape.elements() {
            "one scale per tensor".to_owned()
        } else {
            format!("one scale per {per_to} elements")
        };
        return Err(Error::invalid(format!(
            "{}: {} stores {shared}, but the source has different scales ({sa} and {sb}) at {} and {}; converting would change the weights",
            at.what(),
            at.to.format().name(),
            at.place(a * per, block),
            at.place(b * per, block),
        )));
    }
    // Keep the first block's bits where every nonzero block agrees with it (0.0 and −0.0).
    Ok(if sa == group[0] { group[0] } else { sa })
}

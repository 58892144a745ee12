//! Decodes a fuzz input into a layout, a shape and a packed buffer: the first bytes choose the
//! format, variant, tiling and dimensions; the rest is the (possibly truncated or corrupt) data.

use tern::ffi::tern_layout;

pub struct Case<'a> {
    pub layout: tern_layout,
    pub rows: i64,
    pub cols: i64,
    pub data: &'a [u8],
}

pub fn case(input: &[u8]) -> Option<Case<'_>> {
    let (head, data) = input.split_at_checked(8)?;
    let format = 1 + (head[0] % 5) as i32;
    let tiled = head[1] & 1 == 1;
    let (tile_rows, tile_k, simd_rows) = if tiled {
        (32 * (1 + (head[2] % 8) as u32), 16 * (1 + (head[3] % 16) as u32), if head[1] & 2 == 0 { 32 } else { 64 })
    } else {
        (0, 0, 0)
    };
    let layout = tern_layout {
        struct_size: size_of::<tern_layout>() as u32,
        format,
        variant: (head[4] % 3) as u32,
        tile_rows,
        tile_k,
        simd_rows,
    };
    let rows = 1 + (head[5] % 64) as i64;
    let cols = 16 * (1 + u16::from_le_bytes([head[6], head[7]]) as i64 % 128);
    Some(Case { layout, rows, cols, data })
}

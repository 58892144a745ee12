//! Mainline ggml's Q2_0 and Q1_0 in tern: block layouts, pack/unpack round trips, sizes and the
//! errors that name the shape or the block, Q2_0's code 3, ggml's reference quantizers on their
//! edge cases, the Q8_0 activation quantizers, and the scalar vec_dot oracles. Bit-exactness
//! against the real ggml is checked by examples-c/ggml-pinned (scripts/test-all.sh).

use half::f16;
use tern::format::qx_0::Codec;
use tern::format::{Shape, q1_0, q2_0};
use tern::quant::{ggml_dot, ggml_q, q8_0};

fn shape(rows: i64, cols: i64) -> Shape {
    Shape::new(rows, cols).unwrap()
}

/// splitmix64
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn sym(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

fn random_values(codec: &Codec, n: usize, rng: &mut Rng) -> Vec<i8> {
    let choices: Vec<i8> = (-1..=2).filter(|&v| (codec.holds)(v)).collect();
    (0..n)
        .map(|_| choices[rng.below(choices.len() as u64) as usize])
        .collect()
}

#[test]
fn block_sizes_are_ggmls() {
    assert_eq!((q2_0::BLOCK, q2_0::BLOCK_BYTES), (64, 18));
    assert_eq!((q1_0::BLOCK, q1_0::BLOCK_BYTES), (128, 18));
    assert_eq!((q8_0::BLOCK, q8_0::BLOCK_BYTES), (32, 34));
    assert_eq!(q2_0::CODEC.packed_size(shape(3, 64 * 5)).unwrap(), 15 * 18);
    assert_eq!(q1_0::CODEC.packed_size(shape(2, 128 * 3)).unwrap(), 6 * 18);
    // Rows that are not a multiple of 256 are fine: blocks are 64 / 128.
    assert_eq!(q2_0::CODEC.packed_size(shape(1, 192)).unwrap(), 3 * 18);
}

#[test]
fn shapes_that_are_not_whole_blocks_are_errors_naming_the_shape() {
    for (codec, cols) in [(&q2_0::CODEC, 96), (&q2_0::CODEC, 100), (&q1_0::CODEC, 64)] {
        let e = codec.packed_size(shape(7, cols)).unwrap_err();
        let want = format!("rows = 7, cols = {cols}");
        assert!(e.message.contains(&want), "{}", e.message);
        assert!(e.message.contains(codec.name), "{}", e.message);
        assert!(
            e.message.contains(&codec.block.to_string()),
            "{}",
            e.message
        );
    }
}

#[test]
fn pack_unpack_round_trips_including_code_3() {
    let mut rng = Rng(1);
    for codec in [&q2_0::CODEC, &q1_0::CODEC] {
        for (rows, blocks_per_row) in [(1, 1), (3, 5), (2, 9)] {
            let s = shape(rows, (blocks_per_row * codec.block) as i64);
            let n_blocks = s.elements() / codec.block;
            let values = random_values(codec, s.elements(), &mut rng);
            let scales: Vec<f32> = (0..n_blocks)
                .map(|_| f32::from(f16::from_f32(rng.sym() * 4.0)))
                .collect();
            let mut packed = vec![0u8; codec.packed_size(s).unwrap()];
            codec.pack(s, &values, &scales, &mut packed).unwrap();
            let mut got = vec![0i8; s.elements()];
            let mut got_scales = vec![0f32; n_blocks];
            codec.unpack(s, &packed, &mut got, &mut got_scales).unwrap();
            assert_eq!(got, values, "{}", codec.name);
            assert_eq!(got_scales, scales, "{}", codec.name);
            assert_eq!(codec.validate(s, &packed).unwrap(), scales);
        }
    }
    // Code 3 (+2) really is in the random data of Q2_0.
    let v = random_values(&q2_0::CODEC, 64, &mut Rng(2));
    assert!(v.contains(&2));
}

#[test]
fn byte_layouts_are_ggmls() {
    // Q2_0: d first, then element j in bits 2·(j%4) of byte j/4, code = value + 1.
    let s = shape(1, 64);
    let mut values = vec![0i8; 64];
    values[..4].copy_from_slice(&[-1, 0, 1, 2]);
    values[63] = 2;
    let mut b = [0u8; 18];
    q2_0::CODEC.pack(s, &values, &[1.5], &mut b).unwrap();
    assert_eq!(&b[..2], &f16::from_f32(1.5).to_le_bytes());
    assert_eq!(b[2], 0b11_10_01_00);
    assert_eq!(b[3], 0b01_01_01_01);
    assert_eq!(b[17], 0b11_01_01_01);
    // Q1_0: d first, then element j in bit j%8 of byte j/8, set = +1.
    let s = shape(1, 128);
    let mut values = vec![-1i8; 128];
    values[0] = 1;
    values[9] = 1;
    values[127] = 1;
    let mut b = [0u8; 18];
    q1_0::CODEC.pack(s, &values, &[0.25], &mut b).unwrap();
    assert_eq!(&b[..2], &f16::from_f32(0.25).to_le_bytes());
    assert_eq!((b[2], b[3], b[17]), (0x01, 0x02, 0x80));
    assert!(b[4..17].iter().all(|&x| x == 0));
}

#[test]
fn pack_errors_name_the_value_the_block_or_the_buffer() {
    let s = shape(2, 64);
    let mut values = vec![0i8; 128];
    values[70] = 3;
    let mut out = vec![0xAAu8; 36];
    let e = q2_0::CODEC
        .pack(s, &values, &[1.0, 1.0], &mut out)
        .unwrap_err();
    assert!(
        e.message.contains("values[70] = 3 (block 1)"),
        "{}",
        e.message
    );
    assert!(out.iter().all(|&b| b == 0xAA), "nothing written on error");

    let e = q1_0::CODEC
        .pack(shape(1, 128), &[0i8; 128], &[1.0], &mut out)
        .unwrap_err();
    assert!(
        e.message.contains("values[0] = 0 (block 0)"),
        "{}",
        e.message
    );

    let e = q2_0::CODEC
        .pack(s, &[0i8; 128], &[1.0, 1e6], &mut out)
        .unwrap_err();
    assert!(e.message.contains("scales[1]"), "{}", e.message);
    let e = q2_0::CODEC
        .pack(s, &[0i8; 128], &[1.0, 1.0], &mut out[..35])
        .unwrap_err();
    assert!(
        e.message.contains("dst is 35 bytes < required 36"),
        "{}",
        e.message
    );
    let e = q2_0::CODEC
        .pack(s, &[0i8; 127], &[1.0, 1.0], &mut out)
        .unwrap_err();
    assert!(e.message.contains("values"), "{}", e.message);
    assert!(out.iter().all(|&b| b == 0xAA));
}

#[test]
fn non_finite_scales_are_corrupt_data_naming_the_block() {
    for codec in [&q2_0::CODEC, &q1_0::CODEC] {
        let s = shape(1, 3 * codec.block as i64);
        let mut data = vec![0u8; 54];
        data[36..38].copy_from_slice(&f16::NAN.to_le_bytes());
        let e = codec.validate(s, &data).unwrap_err();
        assert!(e.message.contains("block 2"), "{}", e.message);
        data[36..38].copy_from_slice(&f16::INFINITY.to_le_bytes());
        let mut dst = vec![7.0f32; 3 * codec.block];
        assert!(codec.dequantize(s, &data, &mut dst).is_err());
        assert!(dst.iter().all(|&v| v == 7.0), "nothing written on error");
    }
}

#[test]
fn dequantize_is_ggmls_arithmetic() {
    // Q2_0 codes 0..3 with d = -0.5: -1·d, 0·d (= -0.0, as ggml's `0 * d`), d, 2·d.
    let mut b = [0u8; 18];
    b[..2].copy_from_slice(&f16::from_f32(-0.5).to_le_bytes());
    b[2] = 0b11_10_01_00;
    b[3..].fill(0b11_11_11_11);
    let mut out = [0f32; 64];
    q2_0::CODEC.dequantize(shape(1, 64), &b, &mut out).unwrap();
    assert_eq!(out[0], 0.5);
    assert_eq!(out[1].to_bits(), (-0.0f32).to_bits());
    assert_eq!(out[2], -0.5);
    assert_eq!(out[3], -1.0);
    assert!(out[4..].iter().all(|&v| v == -1.0), "code 3 is +2·d");
    // Q1_0: set bit +d, clear bit -d.
    let mut b = [0u8; 18];
    b[..2].copy_from_slice(&f16::from_f32(0.75).to_le_bytes());
    b[2] = 0x01;
    let mut out = [0f32; 128];
    q1_0::CODEC.dequantize(shape(1, 128), &b, &mut out).unwrap();
    assert_eq!(out[0], 0.75);
    assert!(out[1..].iter().all(|&v| v == -0.75));
}

fn q2_0_codes(block: &[u8]) -> Vec<i8> {
    let mut v = vec![0i8; 64];
    q2_0::unpack_codes(&block[2..], &mut v);
    v
}

#[test]
fn q2_0_reference_quantizer_edge_cases() {
    let mut out = [0u8; 18];
    // d = max|x|; ties at ±0.5·d round away from zero (roundf), so ±1; code 3 never written.
    let mut x = [0f32; 64];
    x[0] = 4.0;
    x[1] = 2.0;
    x[2] = -2.0;
    x[3] = -4.0;
    x[4] = f32::from_bits(2.0f32.to_bits() - 1); // just below the tie: 0
    ggml_q::quantize_block_q2_0_ref(&x, &mut out);
    assert_eq!(f32::from(f16::from_le_bytes([out[0], out[1]])), 4.0);
    assert_eq!(&q2_0_codes(&out)[..6], &[1, 1, -1, -1, 0, 0]);
    // all zero: d = 0, every value 0
    ggml_q::quantize_block_q2_0_ref(&[0.0; 64], &mut out);
    assert_eq!(&out[..2], &[0, 0]);
    assert!(q2_0_codes(&out).iter().all(|&v| v == 0));
    // max|x| below 2^-128: 1/d overflows and x86 C gives code 0 (value -1) everywhere
    let tiny: Vec<f32> = (0..64).map(|i| (i as f32 - 32.0) * 1e-41).collect();
    ggml_q::quantize_block_q2_0_ref(&tiny, &mut out);
    assert!(q2_0_codes(&out).iter().all(|&v| v == -1));
    // a NaN weight is ignored by the max and gets code 0
    let mut x = [1.0f32; 64];
    x[5] = f32::NAN;
    ggml_q::quantize_block_q2_0_ref(&x, &mut out);
    assert_eq!(f32::from(f16::from_le_bytes([out[0], out[1]])), 1.0);
    assert_eq!(q2_0_codes(&out)[5], -1);
    assert_eq!(q2_0_codes(&out)[4], 1);
    // rows: whole blocks only
    let e = ggml_q::quantize_row_q2_0_ref(&[0.0; 96], &mut [0u8; 36]).unwrap_err();
    assert!(e.message.contains("96"), "{}", e.message);
}

#[test]
fn q1_0_reference_quantizer_edge_cases() {
    let mut out = [0u8; 18];
    let mut x = [0.5f32; 128];
    x[0] = -0.0; // x >= 0: +d
    x[1] = -1.5;
    x[2] = -0.5;
    ggml_q::quantize_block_q1_0_ref(&x, &mut out);
    // mean |x| = (0 + 1.5 + 125·0.5 + 0.5)/128 = 64.5/128
    assert_eq!(
        f32::from(f16::from_le_bytes([out[0], out[1]])),
        64.5 / 128.0
    );
    assert_eq!(out[2], 0b1111_1001);
    let mut x = [1.0f32; 128];
    x[7] = f32::NAN;
    ggml_q::quantize_block_q1_0_ref(&x, &mut out);
    assert_eq!(out[2], 0x7f, "NaN gets -d");
    let e = ggml_q::quantize_row_q1_0_ref(&[0.0; 64], &mut [0u8; 18]).unwrap_err();
    assert!(e.message.contains("128"), "{}", e.message);
}

#[test]
fn absmean_into_q2_0_writes_ternary_blocks() {
    let mut rng = Rng(3);
    let s = shape(3, 192);
    let w: Vec<f32> = (0..s.elements()).map(|_| rng.sym()).collect();
    let packed = ggml_q::quantize_q2_0_absmean(&w, s, 1e-5).unwrap();
    assert_eq!(packed.len(), 9 * 18);
    let mut values = vec![0i8; s.elements()];
    let mut scales = vec![0f32; 9];
    q2_0::CODEC
        .unpack(s, &packed, &mut values, &mut scales)
        .unwrap();
    assert!(values.iter().all(|v| (-1..=1).contains(v)), "no code 3");
    for (b, &d) in scales.iter().enumerate() {
        let mean = w[b * 64..][..64].iter().map(|v| v.abs()).sum::<f32>() / 64.0;
        assert!(
            (d - mean).abs() <= mean * 2e-3,
            "block {b}: scale {d}, absmean {mean}"
        );
    }
    let e = ggml_q::quantize_q2_0_absmean(&w[..96], shape(1, 96), 1e-5).unwrap_err();
    assert!(e.message.contains("cols = 96"), "{}", e.message);
}

#[test]
fn q8_0_quantizers_differ_where_ggml_s_do() {
    let mut x = [0f32; 32];
    x[0] = 127.0; // amax 127: id = 1 in all three
    x[1] = 0.5;
    x[2] = 1.5;
    x[3] = -2.5;
    let (mut a, mut r, mut n) = ([0u8; 34], [0u8; 34], [0u8; 34]);
    q8_0::quantize_block_x86(&x, &mut a);
    q8_0::quantize_block_ref(&x, &mut r);
    q8_0::quantize_block_neon(&x, &mut n);
    assert_eq!(&a[..2], &f16::from_f32(1.0).to_le_bytes());
    assert_eq!(&a[2..6], &[127, 0, 2, (-2i8) as u8], "x86: ties to even");
    assert_eq!(
        &r[2..6],
        &[127, 1, 2, (-3i8) as u8],
        "ref: ties away from zero"
    );
    assert_eq!(&n[2..6], &a[2..6], "NEON: ties to even");
    // A block whose 127/amax overflows: x86 ggml stores -128 everywhere, the ref 0.
    let tiny = [1e-38f32; 32];
    q8_0::quantize_block_x86(&tiny, &mut a);
    q8_0::quantize_block_ref(&tiny, &mut r);
    assert!(a[2..].iter().all(|&q| q == 0x80));
    assert!(r[2..].iter().all(|&q| q == 0));
}

/// A Q8_0 block with scale 1 and the given values.
fn q8_block(qs: &[i8; 32]) -> Vec<u8> {
    let mut b = f16::from_f32(1.0).to_le_bytes().to_vec();
    b.extend(qs.iter().map(|&q| q as u8));
    b
}

#[test]
fn vec_dot_oracles_are_exact_on_integer_data() {
    // Q2_0 with d = 1 against activations of scale 1: the exact integer dot, code 3 as +2.
    let mut rng = Rng(4);
    let values = random_values(&q2_0::CODEC, 128, &mut rng);
    let mut w = vec![0u8; 36];
    q2_0::CODEC
        .pack(shape(1, 128), &values, &[1.0, 1.0], &mut w)
        .unwrap();
    let acts: Vec<i8> = (0..128).map(|_| rng.below(255) as i8 - 127).collect();
    let y: Vec<u8> = acts
        .chunks(32)
        .flat_map(|c| q8_block(c.try_into().unwrap()))
        .collect();
    let exact: i32 = values
        .iter()
        .zip(&acts)
        .map(|(&a, &b)| a as i32 * b as i32)
        .sum();
    assert_eq!(ggml_dot::vec_dot_q2_0_q8_0(&w, &y), exact as f32);

    let values = random_values(&q1_0::CODEC, 128, &mut rng);
    let mut w = vec![0u8; 18];
    q1_0::CODEC
        .pack(shape(1, 128), &values, &[1.0], &mut w)
        .unwrap();
    let exact: i32 = values
        .iter()
        .zip(&acts)
        .map(|(&a, &b)| a as i32 * b as i32)
        .sum();
    assert_eq!(ggml_dot::vec_dot_q1_0_q8_0_generic(&w, &y), exact as f32);
    assert_eq!(ggml_dot::vec_dot_q1_0_q8_0_avx2(&w, &y), exact as f32);
}

#[test]
fn q1_0_avx2_order_wraps_minus_128_as_ggml_s_kernel_does() {
    // All bits clear (-d) against -128: the generic code computes +128 per element, ggml's AVX2
    // kernel negates in int8 and keeps -128.
    let mut w = vec![0u8; 18];
    w[..2].copy_from_slice(&f16::from_f32(1.0).to_le_bytes());
    let y: Vec<u8> = (0..4).flat_map(|_| q8_block(&[-128; 32])).collect();
    assert_eq!(ggml_dot::vec_dot_q1_0_q8_0_generic(&w, &y), 128.0 * 128.0);
    assert_eq!(ggml_dot::vec_dot_q1_0_q8_0_avx2(&w, &y), -128.0 * 128.0);
}

#[test]
fn q1_0_generic_and_avx2_orders_round_differently() {
    // The two summation orders are not interchangeable: on general data they disagree in the
    // last bits for some rows, which is why the raw tier picks the one ggml runs.
    let mut rng = Rng(5);
    let mut differ = 0;
    for _ in 0..200 {
        let values = random_values(&q1_0::CODEC, 512, &mut rng);
        let scales: Vec<f32> = (0..4).map(|_| rng.sym() * 3.0).collect();
        let mut w = vec![0u8; 72];
        q1_0::CODEC
            .pack(shape(1, 512), &values, &scales, &mut w)
            .unwrap();
        let x: Vec<f32> = (0..512).map(|_| rng.sym()).collect();
        let mut y = vec![0u8; 16 * 34];
        q8_0::quantize_blocks(q8_0::quantize_block_x86, &x, &mut y);
        let (g, a) = (
            ggml_dot::vec_dot_q1_0_q8_0_generic(&w, &y),
            ggml_dot::vec_dot_q1_0_q8_0_avx2(&w, &y),
        );
        assert!((g - a).abs() <= 1e-4 * (1.0 + g.abs()), "{g} vs {a}");
        differ += usize::from(g.to_bits() != a.to_bits());
    }
    assert!(differ > 0, "the orders never differed on 200 rows");
}

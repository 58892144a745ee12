//! TL1 and TL2 against the golden vectors produced by the real bitnet.cpp code (tests/data/README.md):
//! packed weights and scale, LUT bytes and kernel outputs bit for bit; plus round trips with
//! `choose_tiling` on many shapes (tern's padded extension included), the reference GEMV against
//! exact integer math, and corrupt buffers.

mod common;

use common::{read_bytes, read_f32};
use tern::format::{Shape, tl1, tl2};

struct Case {
    name: &'static str,
    weights: &'static str,
    acts: &'static str,
    m: usize,
    k: usize,
    t: usize,
    /// Tilings from `tl1/kernel_config_tl1.ini` and `tl2/kernel_config_tl2.ini` (BM, BK, bm).
    tl1: (usize, usize, usize),
    tl2: (usize, usize, usize),
}

const CASES: &[Case] = &[
    Case {
        name: "s256x256",
        weights: "s256x256",
        acts: "s256x256.acts",
        m: 256,
        k: 256,
        t: 1,
        tl1: (128, 64, 64),
        tl2: (128, 96, 32),
    },
    Case {
        name: "s256x256_t8",
        weights: "s256x256",
        acts: "s256x256.acts8",
        m: 256,
        k: 256,
        t: 8,
        tl1: (128, 64, 64),
        tl2: (128, 96, 32),
    },
    Case {
        name: "s320x3200",
        weights: "s320x3200",
        acts: "s320x3200.acts",
        m: 320,
        k: 3200,
        t: 1,
        tl1: (320, 128, 64),
        tl2: (320, 96, 32),
    },
    Case {
        name: "s256x1536",
        weights: "s256x1536",
        acts: "s256x1536.acts",
        m: 256,
        k: 1536,
        t: 1,
        tl1: (128, 64, 64),
        tl2: (128, 192, 32),
    },
];

fn shape(m: usize, k: usize) -> Shape {
    Shape::new(m as i64, k as i64).unwrap()
}

fn tiling((big_m, bk, bm): (usize, usize, usize)) -> tl1::Tiling {
    tl1::Tiling {
        tile_rows: big_m,
        tile_k: bk,
        simd_rows: bm,
    }
}

/// bitnet.cpp's converter rule: |w| < 1e-6 → 0, else sign; scale = max|w|.
fn ternarize(w: &[f32]) -> (Vec<i8>, f32) {
    let t = w
        .iter()
        .map(|&v| {
            if v.abs() < 1e-6 {
                0
            } else if v > 0.0 {
                1
            } else {
                -1
            }
        })
        .collect();
    let scale = w.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    (t, scale)
}

fn weights(case: &Case) -> (Vec<i8>, f32) {
    let w = read_f32(&format!("inputs/{}.weights_f32.bin", case.weights));
    assert_eq!(w.len(), case.m * case.k);
    ternarize(&w)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn scale_at(buf: &[u8], off: usize) -> f32 {
    f32::from_le_bytes(buf[off..off + 4].try_into().unwrap())
}

fn pack1(t: &tl1::Tiling, s: Shape, tern: &[i8], scale: f32) -> Vec<u8> {
    tl1::check_tiling(t, s).unwrap();
    let mut buf = vec![0xAAu8; tl1::packed_size(t, s)];
    tl1::pack(t, s, tern, scale, &mut buf);
    buf
}

fn pack2(t: &tl2::Tiling, s: Shape, tern: &[i8], scale: f32) -> Vec<u8> {
    tl2::check_tiling(t, s).unwrap();
    let mut buf = vec![0xAAu8; tl2::packed_size(t, s)];
    tl2::pack(t, s, tern, scale, &mut buf);
    buf
}

// ---------------------------------------------------------------------------------------------
// Golden cases

#[test]
fn tl1_golden_weights_roundtrip_lut_and_outputs() {
    for case in CASES {
        let s = shape(case.m, case.k);
        let t = tiling(case.tl1);
        let (tern, scale) = weights(case);
        let buf = pack1(&t, s, &tern, scale);
        assert!(tl1::is_bitnet_layout(&t, s));
        assert_eq!(buf.len(), case.m * case.k / 4 + 32, "{}", case.name);
        let off = tl1::scale_offset(&t, s);
        assert_eq!(off, case.m * case.k / 4);
        assert!(buf[off + 4..].iter().all(|&b| b == 0));
        if case.t == 1 {
            let golden = read_bytes(&format!("tl1/{}.tl1_weight.bin", case.name));
            assert!(
                buf[..off] == golden[..],
                "{}: TL1 payload differs from the converter's",
                case.name
            );
            let gscale = read_f32(&format!("tl1/{}.tl1_scale_f32.bin", case.name));
            assert_eq!(
                scale_at(&buf, off).to_bits(),
                gscale[0].to_bits(),
                "{}",
                case.name
            );
        }
        assert_eq!(
            tl1::validate(&t, s, &buf).unwrap().to_bits(),
            scale.to_bits()
        );
        let mut back = vec![9i8; case.m * case.k];
        tl1::unpack(&t, s, &buf, &mut back);
        assert!(
            back == tern,
            "{}: TL1 unpack is not the inverse of pack",
            case.name
        );

        let acts = read_f32(&format!("inputs/{}_f32.bin", case.acts));
        assert_eq!(acts.len(), case.t * case.k);
        if case.t == 1 {
            let x = &acts[..case.k];
            let ls = tl1::lut_scale(x);
            let gls = read_f32(&format!("tl1/{}.tl1_lut_scale_f32.bin", case.name));
            assert_eq!(ls.to_bits(), gls[0].to_bits(), "{}: lut scale", case.name);
            let mut lut = vec![0u8; case.k / 2 * 32];
            tl1::build_lut(x, ls, &mut lut);
            let glut = read_bytes(&format!("tl1/{}.tl1_lut_i8.bin", case.name));
            assert!(lut == glut, "{}: TL1 LUT bytes differ", case.name);
        }
        let gout = read_f32(&format!("tl1/{}.tl1_out_f32.bin", case.name));
        assert_eq!(gout.len(), case.t * case.m);
        let mut y = vec![0f32; case.m];
        for tok in 0..case.t {
            tl1::lut_gemv(&t, s, &buf, &acts[tok * case.k..(tok + 1) * case.k], &mut y);
            assert_eq!(
                bits(&y),
                bits(&gout[tok * case.m..(tok + 1) * case.m]),
                "{} token {tok}: TL1 outputs differ",
                case.name
            );
        }
    }
}

#[test]
fn tl2_golden_weights_roundtrip_lut_and_outputs() {
    for case in CASES {
        let s = shape(case.m, case.k);
        let t = tiling(case.tl2);
        let (tern, scale) = weights(case);
        let buf = pack2(&t, s, &tern, scale);
        assert!(tl2::is_bitnet_layout(&t, s));
        let d = tl2::dims(&t, s);
        let payload = (case.k - 256) * case.m / 3 * 5 / 8 + 256 * case.m / 2 * 4 / 8;
        assert_eq!(d.payload_bytes(), payload);
        let off = tl2::scale_offset(&t, s);
        assert_eq!(off, payload.div_ceil(32) * 32);
        assert_eq!(buf.len(), off + 32);
        assert!(buf[payload..off].iter().all(|&b| b == 0));
        assert!(buf[off + 4..].iter().all(|&b| b == 0));
        if case.t == 1 {
            let golden = read_bytes(&format!("tl2/{}.tl2_weight.bin", case.name));
            assert_eq!(golden.len(), payload, "{}", case.name);
            assert!(
                buf[..payload] == golden[..],
                "{}: TL2 payload differs from the converter's",
                case.name
            );
            let gscale = read_f32(&format!("tl2/{}.tl2_scale_f32.bin", case.name));
            assert_eq!(
                scale_at(&buf, off).to_bits(),
                gscale[0].to_bits(),
                "{}",
                case.name
            );
        }
        assert_eq!(
            tl2::validate(&t, s, &buf).unwrap().to_bits(),
            scale.to_bits()
        );
        let mut back = vec![9i8; case.m * case.k];
        tl2::unpack(&t, s, &buf, &mut back).unwrap();
        assert!(
            back == tern,
            "{}: TL2 unpack is not the inverse of pack",
            case.name
        );

        let acts = read_f32(&format!("inputs/{}_f32.bin", case.acts));
        assert_eq!(acts.len(), case.t * case.k);
        let gls = read_f32(&format!("tl2/{}.tl2_lut_scale_f32.bin", case.name));
        assert_eq!(gls.len(), case.t);
        let g3 = read_bytes(&format!("tl2/{}.tl2_three_lut_i8.bin", case.name));
        assert_eq!(g3.len(), case.t * d.three_k / 3 * 32);
        let g2 = if d.two_k > 0 {
            read_bytes(&format!("tl2/{}.tl2_two_lut_i8.bin", case.name))
        } else {
            Vec::new()
        };
        assert_eq!(g2.len(), case.t * d.two_k / 2 * 32);
        let gout = read_f32(&format!("tl2/{}.tl2_out_f32.bin", case.name));
        assert_eq!(gout.len(), case.t * case.m);
        let mut y = vec![0f32; case.m];
        for tok in 0..case.t {
            let x = &acts[tok * case.k..(tok + 1) * case.k];
            let ls = tl2::lut_scale(x);
            assert_eq!(
                ls.to_bits(),
                gls[tok].to_bits(),
                "{} token {tok}: lut scale",
                case.name
            );
            let n3 = d.three_k / 3 * 32;
            let mut lut3 = vec![0u8; n3];
            tl2::build_three_lut(&x[..d.three_k], ls, &mut lut3);
            assert!(
                lut3 == g3[tok * n3..(tok + 1) * n3],
                "{} token {tok}: three-LUT differs",
                case.name
            );
            let n2 = d.two_k / 2 * 32;
            let mut lut2 = vec![0u8; n2];
            tl2::build_two_lut(&x[d.three_k..], ls, &mut lut2);
            assert!(
                lut2 == g2[tok * n2..(tok + 1) * n2],
                "{} token {tok}: two-LUT differs",
                case.name
            );
            tl2::lut_gemv(&t, s, &buf, x, &mut y);
            assert_eq!(
                bits(&y),
                bits(&gout[tok * case.m..(tok + 1) * case.m]),
                "{} token {tok}: TL2 outputs differ",
                case.name
            );
        }
    }
}

/// The golden kernels agree with each other (spec §6): TL1 == TL2 for every case.
#[test]
fn tl1_and_tl2_golden_outputs_agree() {
    for case in CASES {
        let a = read_f32(&format!("tl1/{}.tl1_out_f32.bin", case.name));
        let b = read_f32(&format!("tl2/{}.tl2_out_f32.bin", case.name));
        assert_eq!(bits(&a), bits(&b), "{}", case.name);
    }
}

// ---------------------------------------------------------------------------------------------
// Tiling choice

/// BitNet-b1.58-2B-4T projections (M × K): bitnet.cpp has no preset for them, but its constraints
/// can be met, so the chosen tilings must be bitnet layouts (no padding).
const SHAPES_2B4T: [(usize, usize); 4] = [(2560, 2560), (640, 2560), (6912, 2560), (2560, 6912)];

#[test]
fn choose_tiling_2b4t_shapes_are_bitnet_layouts() {
    let expect_tl1 = [
        (256, 128, 64),
        (128, 128, 64),
        (256, 128, 64),
        (256, 128, 64),
    ];
    let expect_tl2 = [(256, 96, 32), (160, 96, 32), (256, 96, 32), (256, 96, 32)];
    for (i, &(m, k)) in SHAPES_2B4T.iter().enumerate() {
        let s = shape(m, k);
        let t1 = tl1::choose_tiling(s).unwrap();
        assert_eq!(t1, tiling(expect_tl1[i]), "TL1 {m}×{k}");
        assert!(tl1::is_bitnet_layout(&t1, s));
        assert_eq!(tl1::packed_size(&t1, s), m * k / 4 + 32);
        let t2 = tl2::choose_tiling(s).unwrap();
        assert_eq!(t2, tiling(expect_tl2[i]), "TL2 {m}×{k}");
        assert!(tl2::is_bitnet_layout(&t2, s));
        let d = tl2::dims(&t2, s);
        assert!(d.two_k <= 256 && d.two_k.is_multiple_of(32));
        assert!(d.data_bytes() <= d.payload_bytes());
        assert_eq!(
            d.payload_bytes(),
            (k - 256) * m / 3 * 5 / 8 + 256 * m / 2 * 4 / 8
        );
    }
}

#[test]
fn choose_tiling_uses_presets_and_presets_are_valid() {
    // bitnet.cpp presets (spec §3.6).
    type Tile = (usize, usize, usize);
    let presets: [((usize, usize), Tile, Tile); 10] = [
        ((1536, 4096), (256, 128, 32), (256, 96, 32)),
        ((1536, 1536), (128, 64, 64), (128, 192, 32)),
        ((4096, 1536), (256, 128, 32), (256, 96, 32)),
        ((3200, 8640), (160, 64, 32), (160, 96, 32)),
        ((3200, 3200), (320, 128, 64), (320, 96, 32)),
        ((8640, 3200), (320, 64, 32), (320, 96, 32)),
        ((14336, 4096), (256, 128, 64), (256, 96, 32)),
        ((4096, 14336), (256, 128, 32), (128, 96, 32)),
        ((1024, 4096), (128, 64, 64), (256, 96, 32)),
        ((4096, 4096), (128, 64, 32), (128, 96, 32)),
    ];
    for ((m, k), p1, p2) in presets {
        let s = shape(m, k);
        assert_eq!(tl1::choose_tiling(s).unwrap(), tiling(p1), "TL1 {m}×{k}");
        assert_eq!(tl2::choose_tiling(s).unwrap(), tiling(p2), "TL2 {m}×{k}");
        assert!(tl1::is_bitnet_layout(&tiling(p1), s));
        assert!(tl2::is_bitnet_layout(&tiling(p2), s));
    }
    for case in CASES {
        let s = shape(case.m, case.k);
        tl1::check_tiling(&tiling(case.tl1), s).unwrap();
        tl2::check_tiling(&tiling(case.tl2), s).unwrap();
    }
}

#[test]
fn check_tiling_rejects_with_useful_messages() {
    let err1 = |t, m, k| {
        tl1::check_tiling(&tiling(t), shape(m, k))
            .unwrap_err()
            .message
    };
    let err2 = |t, m, k| {
        tl2::check_tiling(&tiling(t), shape(m, k))
            .unwrap_err()
            .message
    };
    assert!(err1((128, 64, 48), 256, 256).contains("32 or 64"));
    assert!(err1((96, 64, 64), 256, 256).contains("multiple of simd_rows"));
    assert!(err1((128, 62, 64), 256, 256).contains("multiple of 256/bm = 4"));
    assert!(err1((128, 512, 64), 256, 512).contains("at most 256"));
    let e = err1((192, 64, 64), 256, 256);
    assert!(
        e.contains("M % BM == 0") && e.contains("allowed BM with bm = 64: 64, 128, 256"),
        "{e}"
    );
    assert!(err1((64, 64, 64), 96, 256).contains("use bm = 32"));
    let e = err1((128, 96, 32), 256, 256);
    assert!(e.contains("K % BK == 0") && e.contains("allowed BK"), "{e}");
    assert!(err1((256, 64, 32), 100, 256).contains("padding only"));
    assert!(err1((128, 128, 32), 100, 100).contains("padding only"));

    assert!(err2((128, 96, 64), 256, 256).contains("only 32"));
    assert!(err2((128, 100, 32), 256, 256).contains("multiple of 24"));
    assert!(err2((128, 264, 32), 256, 264).contains("at most 240"));
    let e = err2((96, 96, 32), 2560, 2560);
    assert!(
        e.contains("M % BM == 0") && e.contains("allowed BM: 32, 64"),
        "{e}"
    );
    let e = err2((256, 48, 32), 2560, 2560);
    assert!(
        e.contains("two_k = 16") && e.contains("allowed BK for K = 2560: 96, 192, 240"),
        "{e}"
    );
    assert!(err2((160, 96, 32), 100, 256).contains("padding only"));
    // Zero tiles are rejected, not divided by.
    assert!(tl1::check_tiling(&tiling((0, 0, 0)), shape(32, 32)).is_err());
    assert!(tl2::check_tiling(&tiling((0, 0, 32)), shape(32, 32)).is_err());
    assert!(tl2::check_tiling(&tiling((32, 0, 32)), shape(32, 32)).is_err());
}

#[test]
fn padded_extension_layouts() {
    // TL1 100×200: rows → 128, cols → 208 (200 is not a multiple of 16).
    let s = shape(100, 200);
    let t = tl1::choose_tiling(s).unwrap();
    assert_eq!(t, tiling((128, 16, 32)));
    assert_eq!(tl1::padded_shape(&t, s), (128, 208));
    assert!(!tl1::is_bitnet_layout(&t, s));
    assert_eq!(tl1::packed_size(&t, s), 128 * 208 / 4 + 32);
    // TL2 100×200: K < 256, so bitnet.cpp cannot store it; BK = 168 needs no column padding
    // (168 triple columns + 32 pair columns), while BK = 96 would pad to 224.
    let t = tl2::choose_tiling(s).unwrap();
    assert_eq!(t, tiling((128, 168, 32)));
    let d = tl2::dims(&t, s);
    assert_eq!((d.rows, d.cols, d.three_k, d.two_k), (128, 200, 168, 32));
    assert_eq!(d.payload_bytes(), d.data_bytes());
    assert_eq!(
        tl2::packed_size(&t, s),
        (128usize * 168 * 5 / 24 + 128 * 32 / 4).div_ceil(32) * 32 + 32
    );
    let d = tl2::dims(&tiling((128, 96, 32)), s);
    assert_eq!((d.rows, d.cols, d.three_k, d.two_k), (128, 224, 192, 32));
    // TL2 33×3000: only rows padded (K = 3000 takes BK = 216, two_k = 192).
    let s = shape(33, 3000);
    let t = tl2::choose_tiling(s).unwrap();
    assert_eq!(t, tiling((64, 216, 32)));
    let d = tl2::dims(&t, s);
    assert_eq!((d.rows, d.cols, d.three_k, d.two_k), (64, 3000, 2808, 192));
    // Columns that bitnet.cpp can store are never padded, rows likewise.
    let s = shape(64, 64);
    assert!(tl1::is_bitnet_layout(&tl1::choose_tiling(s).unwrap(), s));
    let t = tl2::choose_tiling(s).unwrap();
    let d = tl2::dims(&t, s);
    assert_eq!((d.rows, d.cols, d.three_k, d.two_k), (64, 64, 0, 64));
}

// ---------------------------------------------------------------------------------------------
// Random round trips on many shapes

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn ternary(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| self.below(3) as i8 - 1).collect()
    }
    fn normal_ish(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                (0..4)
                    .map(|_| (self.below(2001) as f32 - 1000.0) / 1000.0)
                    .sum::<f32>()
            })
            .collect()
    }
}

const ROUNDTRIP_SHAPES: &[(usize, usize)] = &[
    (2560, 2560),
    (640, 2560),
    (6912, 2560),
    (2560, 6912),
    (100, 200),
    (33, 3000),
    (1, 256),
    (64, 64),
    (1, 1),
    (3, 7),
    (32, 16),
    (31, 17),
    (96, 264),
    (64, 296),
    (200, 100),
    (128, 257),
    (65, 1000),
    (256, 1536),
    (320, 3200),
    (7, 2048),
];

/// Exact reference of the LUT kernels: `Σ t·round(x·s)` in integers, then the epilogue.
fn exact_gemv(m: usize, k: usize, tern: &[i8], scale: f32, ls: f32, x: &[f32]) -> Vec<f32> {
    let q: Vec<i64> = x
        .iter()
        .map(|v| (v * ls).round_ties_even() as i64)
        .collect();
    (0..m)
        .map(|r| {
            let dot: i64 = (0..k).map(|c| tern[r * k + c] as i64 * q[c]).sum();
            dot as i32 as f32 / ls * scale
        })
        .collect()
}

#[test]
fn roundtrip_and_gemv_with_chosen_tilings() {
    let mut rng = Rng(0x5EED_7E24);
    for &(m, k) in ROUNDTRIP_SHAPES {
        let s = shape(m, k);
        let tern = rng.ternary(m * k);
        let scale = 0.0123f32;
        let x = rng.normal_ish(k);
        let big = m * k > 2_000_000;

        let t = tl1::choose_tiling(s).unwrap();
        let buf = pack1(&t, s, &tern, scale);
        assert_eq!(tl1::validate(&t, s, &buf).unwrap(), scale, "TL1 {m}×{k}");
        let mut back = vec![9i8; m * k];
        tl1::unpack(&t, s, &buf, &mut back);
        assert!(back == tern, "TL1 {m}×{k} {t:?}: round trip");
        if !big {
            let mut y = vec![0f32; m];
            tl1::lut_gemv(&t, s, &buf, &x, &mut y);
            let want = exact_gemv(m, k, &tern, scale, tl1::lut_scale(&x), &x);
            assert_eq!(bits(&y), bits(&want), "TL1 {m}×{k} {t:?}: gemv");
        }

        let t = tl2::choose_tiling(s).unwrap();
        let buf = pack2(&t, s, &tern, scale);
        assert_eq!(tl2::validate(&t, s, &buf).unwrap(), scale, "TL2 {m}×{k}");
        let mut back = vec![9i8; m * k];
        tl2::unpack(&t, s, &buf, &mut back).unwrap();
        assert!(back == tern, "TL2 {m}×{k} {t:?}: round trip");
        if !big {
            let mut y = vec![0f32; m];
            tl2::lut_gemv(&t, s, &buf, &x, &mut y);
            let want = exact_gemv(m, k, &tern, scale, tl2::lut_scale(&x), &x);
            assert_eq!(bits(&y), bits(&want), "TL2 {m}×{k} {t:?}: gemv");
        }
    }
}

/// Every valid tiling of small shapes round-trips (TL1: all bm, BM, BK up to small bounds).
#[test]
fn roundtrip_all_small_tilings() {
    let mut rng = Rng(42);
    for &(m, k) in &[
        (64, 48),
        (96, 256),
        (40, 36),
        (32, 264),
        (17, 300),
        (128, 520),
    ] {
        let s = shape(m, k);
        let tern = rng.ternary(m * k);
        let x = rng.normal_ish(k);
        let mut tried = (0, 0);
        for bm in [32, 64] {
            for big_m in (bm..=256).step_by(bm) {
                for bk in (4..=256).step_by(4) {
                    let t = tiling((big_m, bk, bm));
                    if tl1::check_tiling(&t, s).is_ok() {
                        tried.0 += 1;
                        let buf = pack1(&t, s, &tern, 1.0);
                        tl1::validate(&t, s, &buf).unwrap();
                        let mut back = vec![0i8; m * k];
                        tl1::unpack(&t, s, &buf, &mut back);
                        assert!(back == tern, "TL1 {m}×{k} {t:?}");
                        let mut y = vec![0f32; m];
                        tl1::lut_gemv(&t, s, &buf, &x, &mut y);
                        let want = exact_gemv(m, k, &tern, 1.0, tl1::lut_scale(&x), &x);
                        assert_eq!(bits(&y), bits(&want), "TL1 {m}×{k} {t:?}");
                    }
                }
            }
        }
        for big_m in (32..=256).step_by(32) {
            for bk in (24..=240).step_by(24) {
                let t = tiling((big_m, bk, 32));
                if tl2::check_tiling(&t, s).is_ok() {
                    tried.1 += 1;
                    let buf = pack2(&t, s, &tern, 1.0);
                    tl2::validate(&t, s, &buf).unwrap();
                    let mut back = vec![0i8; m * k];
                    tl2::unpack(&t, s, &buf, &mut back).unwrap();
                    assert!(back == tern, "TL2 {m}×{k} {t:?}");
                    let mut y = vec![0f32; m];
                    tl2::lut_gemv(&t, s, &buf, &x, &mut y);
                    let want = exact_gemv(m, k, &tern, 1.0, tl2::lut_scale(&x), &x);
                    assert_eq!(bits(&y), bits(&want), "TL2 {m}×{k} {t:?}");
                }
            }
        }
        assert!(tried.0 > 0 && tried.1 > 0, "{m}×{k}: no tiling accepted");
    }
}

// ---------------------------------------------------------------------------------------------
// Corrupt buffers

#[test]
fn tl1_detects_corruption() {
    let s = shape(100, 200);
    let t = tl1::choose_tiling(s).unwrap();
    let tern = Rng(7).ternary(100 * 200);
    let buf = pack1(&t, s, &tern, 0.5);
    let off = tl1::scale_offset(&t, s);

    let mut b = buf.clone();
    b[5] = 0x94; // pair index 9
    let e = tl1::validate(&t, s, &b).unwrap_err().message;
    assert!(e.contains("byte 5") && e.contains("pair index 9"), "{e}");
    let mut b = buf.clone();
    b[off..off + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(
        tl1::validate(&t, s, &b)
            .unwrap_err()
            .message
            .contains(&format!("byte {off}"))
    );
    let mut b = buf.clone();
    b[off..off + 4].copy_from_slice(&(-1.0f32).to_le_bytes());
    assert!(tl1::validate(&t, s, &b).is_err());
    let mut b = buf.clone();
    b[off + 10] = 1;
    assert!(
        tl1::validate(&t, s, &b)
            .unwrap_err()
            .message
            .contains(&format!("byte {}", off + 10))
    );
    // A nonzero weight in a padding row: the last byte belongs to row 127 (padding).
    let mut b = buf.clone();
    let last = off - 1;
    b[last] = 0x44 ^ 0x10; // pair index 5 → w1 = +1
    let e = tl1::validate(&t, s, &b).unwrap_err().message;
    assert!(e.contains("padding"), "{e}");
    assert!(tl1::validate(&t, s, &buf[..buf.len() - 1]).is_err());
}

#[test]
fn tl2_detects_corruption() {
    let s = shape(256, 256);
    let t = tiling((128, 96, 32));
    let tern = Rng(8).ternary(256 * 256);
    let buf = pack2(&t, s, &tern, 0.5);
    let d = tl2::dims(&t, s);
    let off = tl2::scale_offset(&t, s);

    let mut b = buf.clone();
    b[3] = 0xE0; // magnitude 14
    let e = tl2::validate(&t, s, &b).unwrap_err().message;
    assert!(e.contains("byte 3") && e.contains("magnitude 14"), "{e}");
    let two = d.three_bytes() + d.sign_bytes();
    let mut b = buf.clone();
    b[two + 1] = 0x4A; // pair index 10
    let e = tl2::validate(&t, s, &b).unwrap_err().message;
    assert!(
        e.contains(&format!("byte {}", two + 1)) && e.contains("pair index 10"),
        "{e}"
    );
    // Sign bit on a zero triple: zero the first three-part byte's magnitudes, set all its signs.
    let mut b = buf.clone();
    b[0] = 0;
    b[d.three_bytes()..two].fill(0xFF);
    let e = tl2::validate(&t, s, &b).unwrap_err().message;
    assert!(e.contains("negative zero"), "{e}");
    // Zero padding after the data (payload 16384 = data here, so use a shape with padding).
    let s3 = shape(320, 3200);
    let t3 = tiling((320, 96, 32));
    let tern3 = Rng(9).ternary(320 * 3200);
    let mut b3 = pack2(&t3, s3, &tern3, 1.0);
    let d3 = tl2::dims(&t3, s3);
    b3[d3.data_bytes() + 5] = 7;
    let e = tl2::validate(&t3, s3, &b3).unwrap_err().message;
    assert!(
        e.contains(&format!("byte {}", d3.data_bytes() + 5)) && e.contains("zero padding"),
        "{e}"
    );
    let mut b = buf.clone();
    b[off..off + 4].copy_from_slice(&f32::INFINITY.to_le_bytes());
    assert!(
        tl2::validate(&t, s, &b)
            .unwrap_err()
            .message
            .contains(&format!("byte {off}"))
    );
    let mut b = buf.clone();
    b[off + 31] = 1;
    assert!(tl2::validate(&t, s, &b).is_err());
    // Padding rows/cols of the extension must hold zeros.
    let s4 = shape(100, 200);
    let t4 = tl2::choose_tiling(s4).unwrap();
    let b4 = pack2(&t4, s4, &Rng(10).ternary(100 * 200), 1.0);
    let d4 = tl2::dims(&t4, s4);
    let mut b = b4.clone();
    b[d4.three_bytes() - 1] = 0x11; // last three-part byte: a padding row of the last tile
    let e = tl2::validate(&t4, s4, &b).unwrap_err().message;
    assert!(e.contains("padding"), "{e}");
    let mut b = b4.clone();
    let last_two = d4.data_bytes() - 1;
    b[last_two] = 0x55;
    let e = tl2::validate(&t4, s4, &b).unwrap_err().message;
    assert!(e.contains("padding"), "{e}");
}

/// Random byte flips: validate never panics, and whatever it accepts unpacks (and runs through the
/// reference GEMV) without panicking and re-packs to the same bytes.
#[test]
fn random_corruption_never_panics() {
    let mut rng = Rng(0xC0FFEE);
    for &(m, k) in &[(100, 200), (256, 256), (33, 3000), (1, 256), (64, 64)] {
        let s = shape(m, k);
        let tern = rng.ternary(m * k);
        let x = rng.normal_ish(k);
        let t1 = tl1::choose_tiling(s).unwrap();
        let t2 = tl2::choose_tiling(s).unwrap();
        let clean1 = pack1(&t1, s, &tern, 0.25);
        let clean2 = pack2(&t2, s, &tern, 0.25);
        for round in 0..300 {
            for (fmt, clean) in [(1, &clean1), (2, &clean2)] {
                let mut b = clean.clone();
                for _ in 0..1 + round % 4 {
                    let i = rng.below(b.len());
                    b[i] ^= 1 << rng.below(8);
                }
                let mut back = vec![0i8; m * k];
                let mut y = vec![0f32; m];
                if fmt == 1 {
                    if let Ok(sc) = tl1::validate(&t1, s, &b) {
                        tl1::unpack(&t1, s, &b, &mut back);
                        tl1::lut_gemv(&t1, s, &b, &x, &mut y);
                        assert!(
                            pack1(&t1, s, &back, sc) == b,
                            "TL1 accepted a non-canonical buffer"
                        );
                    }
                } else if let Ok(sc) = tl2::validate(&t2, s, &b) {
                    tl2::unpack(&t2, s, &b, &mut back).unwrap();
                    tl2::lut_gemv(&t2, s, &b, &x, &mut y);
                    assert!(
                        pack2(&t2, s, &back, sc) == b,
                        "TL2 accepted a non-canonical buffer"
                    );
                }
                // The reference GEMV tolerates any bytes, validated or not.
                if fmt == 1 {
                    tl1::lut_gemv(&t1, s, &b, &x, &mut y);
                } else {
                    tl2::lut_gemv(&t2, s, &b, &x, &mut y);
                }
            }
        }
    }
}

/// Degenerate activations follow the kernels' integer conversions without panicking.
#[test]
fn degenerate_activations() {
    let s = shape(64, 256);
    let tern = Rng(3).ternary(64 * 256);
    let t1 = tl1::choose_tiling(s).unwrap();
    let t2 = tl2::choose_tiling(s).unwrap();
    let b1 = pack1(&t1, s, &tern, 1.0);
    let b2 = pack2(&t2, s, &tern, 1.0);
    let mut y = vec![0f32; 64];
    for x in [
        vec![0.0f32; 256],
        vec![f32::NAN; 256],
        vec![f32::INFINITY; 256],
        vec![1e-40f32; 256],
    ] {
        tl1::lut_gemv(&t1, s, &b1, &x, &mut y);
        tl2::lut_gemv(&t2, s, &b2, &x, &mut y);
    }
    assert!(tl1::lut_scale(&[0.0; 4]).is_infinite());
    assert!(tl1::lut_scale(&[1.0, f32::NAN]).is_nan());
    assert_eq!(tl2::lut_scale(&[1.0, f32::NAN]), 127.0);
}

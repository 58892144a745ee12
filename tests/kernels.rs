//! Every SIMD I2_S kernel the CPU can run must agree bit for bit with the scalar oracle
//! (`tern::kernel::scalar::i2s_dots`) on both block layouts, ragged shapes, strided and unaligned
//! activations, and inputs whose dots would wrap an int16 accumulator.

use half::f16;
use tern::format::{I2sVariant, i2s};
use tern::kernel::{Isa, Kernels, PanelKernels, TileScaling, scalar};

const VARIANTS: [I2sVariant; 2] = [I2sVariant::X86, I2sVariant::Arm64];

/// xorshift64*: deterministic test data without dependencies.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (((self.next() >> 32) * n as u64) >> 32) as usize
    }
    fn range(&mut self, lo: usize, hi_incl: usize) -> usize {
        lo + self.below(hi_incl - lo + 1)
    }
    fn i8(&mut self) -> i8 {
        (self.next() >> 56) as u8 as i8
    }
    /// A packed byte of four random codes 0..=3 (I2_S never holds code 3, but the row kernels
    /// also run Q2_0, whose code 3 is +2).
    fn code_byte(&mut self) -> u8 {
        (0..4).fold(0, |b, _| (b << 2) | self.below(4) as u8)
    }
}

/// The ISAs this CPU can run, with a note for each one it cannot.
fn isas() -> Vec<Isa> {
    Isa::ALL
        .into_iter()
        .filter(|&isa| {
            let ok = isa.is_available();
            if !ok {
                println!("skipped: {} not available on this CPU", isa.name());
            }
            ok
        })
        .collect()
}

/// The panel kernel sets this CPU can run, labelled, with a note for each one it cannot: every
/// level's (`Kernels::panel`, the AVX-VNNI one at `Isa::AvxVnni`) and the AVX-VNNI kernel's EVEX
/// twin, which runs the AVX-VNNI code on CPUs with AVX-512 VL + VNNI but no AVX-VNNI.
fn panel_sets() -> Vec<(String, &'static PanelKernels)> {
    let mut sets = Vec::new();
    for isa in isas() {
        match Kernels::for_isa(isa).panel() {
            Some(pk) => sets.push((format!("{} ({:?})", isa.name(), pk.bits2.name), pk)),
            None => println!("{}: no panel kernels", isa.name()),
        }
    }
    match tern::kernel::avxvnni_evex_panels() {
        Some(pk) => sets.push(("avxvnni-evex".to_string(), pk)),
        None if cfg!(target_arch = "x86_64") => println!(
            "skipped: avxvnni-evex panel kernels (the AVX-VNNI code with EVEX encodings) need \
             AVX-512 F, VL and VNNI"
        ),
        None => {}
    }
    sets
}

/// One kernel call's inputs. `w_off`/`a_off` shift the data inside its buffer (unaligned starts).
struct Case {
    variant: I2sVariant,
    n_rows: usize,
    cols: usize,
    n_tokens: usize,
    stride: usize,
    weights: Vec<u8>,
    w_off: usize,
    acts: Vec<i8>,
    a_off: usize,
}

impl Case {
    /// Random codes and activations; `stride` = `cols + extra`.
    #[allow(clippy::too_many_arguments)]
    fn random(
        rng: &mut Rng,
        variant: I2sVariant,
        n_rows: usize,
        blocks: usize,
        n_tokens: usize,
        extra: usize,
    ) -> Self {
        let cols = blocks * variant.block_len();
        let mut case = Self::filled(variant, n_rows, cols, n_tokens, cols + extra, 0, 0);
        let (w_off, a_off) = (rng.below(3), rng.below(65));
        case.w_off = w_off;
        case.a_off = a_off;
        case.weights = (0..w_off + n_rows * cols / 4)
            .map(|_| rng.code_byte())
            .collect();
        let n_acts = a_off + (n_tokens - 1) * case.stride + cols;
        case.acts = (0..n_acts).map(|_| rng.i8()).collect();
        case
    }

    /// Every code byte `code_byte`, every activation `act`.
    fn filled(
        variant: I2sVariant,
        n_rows: usize,
        cols: usize,
        n_tokens: usize,
        stride: usize,
        code_byte: u8,
        act: i8,
    ) -> Self {
        Self {
            variant,
            n_rows,
            cols,
            n_tokens,
            stride,
            weights: vec![code_byte; n_rows * cols / 4],
            w_off: 0,
            acts: vec![act; (n_tokens - 1) * stride + cols],
            a_off: 0,
        }
    }

    fn weights(&self) -> &[u8] {
        &self.weights[self.w_off..]
    }

    fn acts(&self) -> &[i8] {
        &self.acts[self.a_off..]
    }

    /// Runs `f`; the dots buffer is longer than needed and its tail must stay untouched.
    fn run(&self, f: tern::kernel::I2sDotsFn) -> Vec<i32> {
        let n = self.n_rows * self.n_tokens;
        let mut dots = vec![i32::MIN + 7; n + 5];
        f(
            self.variant,
            self.weights(),
            self.cols,
            self.acts(),
            self.stride,
            self.n_tokens,
            &mut dots,
        );
        assert!(
            dots[n..].iter().all(|&d| d == i32::MIN + 7),
            "kernel wrote past n_rows·n_tokens"
        );
        dots.truncate(n);
        dots
    }

    /// Runs the oracle and every available kernel and compares them.
    fn check(&self, isas: &[Isa]) -> Vec<i32> {
        let want = self.run(scalar::i2s_dots);
        for &isa in isas {
            let kernels = Kernels::for_isa(isa);
            let got = self.run(kernels.i2s_dots.run);
            if got != want {
                let i = got.iter().zip(&want).position(|(g, w)| g != w).unwrap();
                panic!(
                    "{:?} ({}) differs from scalar: {:?} rows={} cols={} tokens={} stride={} \
                     w_off={} a_off={}: first at token {} row {}: got {}, want {}",
                    kernels.i2s_dots.name,
                    isa.name(),
                    self.variant,
                    self.n_rows,
                    self.cols,
                    self.n_tokens,
                    self.stride,
                    self.w_off,
                    self.a_off,
                    i / self.n_rows,
                    i % self.n_rows,
                    got[i],
                    want[i]
                );
            }
        }
        want
    }
}

/// Each level's row of the ISA table names its own panel kernels: plain AVX2 panels at AVX2, the
/// VNNI ones only at the AVX-VNNI level, the 1.6-bit ones only at the VBMI level. Names only, so
/// every row is checked on any CPU (running them is the oracle tests' job).
#[test]
fn table_rows() {
    for isa in Isa::ALL {
        let row = Kernels::for_isa(isa);
        let x86 = cfg!(target_arch = "x86_64");
        let name = |k: Option<&tern::kernel::Kernel<_>>| k.map(|k| k.name.to_str().unwrap());
        let panels = row.panel();
        let want = match isa {
            Isa::Avx2 if x86 => (Some("i2_s/avx2"), None),
            Isa::AvxVnni if x86 => (Some("i2_s/avxvnni"), None),
            Isa::Avx512 if x86 => (Some("i2_s/avx512"), None),
            Isa::Avx512Vnni if x86 => (Some("i2_s/avx512vnni"), None),
            Isa::Avx512Vbmi if x86 => (Some("i2_s/avx512vnni"), Some("t1_6/avx512vnni")),
            _ => (None, None),
        };
        let got = (
            name(panels.map(|p| &p.bits2)),
            name(panels.and_then(|p| p.bits16.as_ref())),
        );
        assert_eq!(got, want, "{}", isa.name());
        // A level of another architecture gets the scalar row.
        assert!(row.isa == isa || row.isa == Isa::Scalar, "{}", isa.name());
    }
}

/// Levels compare by rank, not by their `tern_isa` numbers (AVX-VNNI, 8, ranks between AVX-512BW,
/// 3, and AVX-512 VNNI, 4); the best level is the highest-ranked one available; every level can be
/// requested by number, and an unknown number's message lists them all.
#[test]
fn isa_levels_rank_and_requests() {
    let ranked = [
        Isa::Scalar,
        Isa::Avx2,
        Isa::Avx512,
        Isa::AvxVnni,
        Isa::Avx512Vnni,
        Isa::Avx512Vbmi,
    ];
    assert!(
        ranked
            .windows(2)
            .all(|w| w[0] < w[1] && w[0].rank() < w[1].rank())
    );
    assert!(Isa::AvxVnni > Isa::Avx512 && (Isa::AvxVnni as i32) > (Isa::Avx512Vnni as i32));
    assert_eq!(Isa::best(), Isa::available().max().unwrap());
    for isa in Isa::ALL {
        match Isa::from_request(isa as i32) {
            Ok(got) => assert!(got == isa && isa.is_available(), "{}", isa.name()),
            Err(e) => {
                assert!(!isa.is_available(), "{}: {}", isa.name(), e.message);
                assert!(
                    e.message.contains("not available on this CPU"),
                    "{}",
                    e.message
                );
            }
        }
    }
    let e = Isa::from_request(10).expect_err("max_isa 10 is unknown");
    for want in ["3 = AVX512", "8 = AVXVNNI", "9 = AVX512VBMI", "7 = I8MM"] {
        assert!(e.message.contains(want), "{}", e.message);
    }
}

#[test]
fn table_names() {
    for isa in isas() {
        let name = Kernels::for_isa(isa).i2s_dots.name.to_str().unwrap();
        let want = match isa {
            Isa::Avx2 | Isa::AvxVnni if cfg!(target_arch = "x86_64") => "i2_s/avx2",
            Isa::Avx512 if cfg!(target_arch = "x86_64") => "i2_s/avx512",
            Isa::Avx512Vnni | Isa::Avx512Vbmi if cfg!(target_arch = "x86_64") => "i2_s/avx512vnni",
            Isa::Neon if cfg!(target_arch = "aarch64") => "i2_s/neon",
            Isa::Dotprod if cfg!(target_arch = "aarch64") => "i2_s/dotprod",
            Isa::I8mm if cfg!(target_arch = "aarch64") => "i2_s/i8mm",
            _ => "i2_s/scalar",
        };
        assert_eq!(name, want, "{}", isa.name());
    }
}

/// The oracle itself against the ternary values that `i2s::pack` packed (codes = ternary + 1).
#[test]
fn oracle_matches_packed_ternary() {
    let mut rng = Rng::new(1);
    for variant in VARIANTS {
        let (rows, cols, n_tokens) = (3, 3 * variant.block_len(), 2);
        let ternary: Vec<i8> = (0..rows * cols).map(|_| rng.below(3) as i8 - 1).collect();
        let mut packed = vec![0u8; rows * cols / 4 + i2s::TAIL_BYTES];
        i2s::pack(variant, &ternary, 1.0, &mut packed);
        let acts: Vec<i8> = (0..n_tokens * cols).map(|_| rng.i8()).collect();
        let mut dots = vec![0; rows * n_tokens];
        let codes = &packed[..rows * cols / 4];
        scalar::i2s_dots(variant, codes, cols, &acts, cols, n_tokens, &mut dots);
        for t in 0..n_tokens {
            for r in 0..rows {
                let want: i32 = (0..cols)
                    .map(|k| (ternary[r * cols + k] as i32 + 1) * acts[t * cols + k] as i32)
                    .sum();
                assert_eq!(dots[t * rows + r], want, "{variant:?} token {t} row {r}");
            }
        }
    }
}

/// Row counts 1..=70: every remainder of the register tiles, with and without full tiles.
#[test]
fn ragged_rows() {
    let isas = isas();
    let mut rng = Rng::new(2);
    for variant in VARIANTS {
        for n_rows in 1..=70 {
            let blocks = rng.range(1, 5);
            let n_tokens = rng.range(1, 9);
            let extra = rng.below(3) * rng.range(1, 40);
            Case::random(&mut rng, variant, n_rows, blocks, n_tokens, extra).check(&isas);
        }
    }
}

/// Column counts of 1..=60 blocks (every int16 widening-group remainder), then model sizes.
#[test]
fn ragged_cols() {
    let isas = isas();
    let mut rng = Rng::new(3);
    for variant in VARIANTS {
        for blocks in 1..=60 {
            let n_rows = rng.range(1, 9);
            let n_tokens = rng.range(1, 9);
            let extra = rng.below(2) * rng.range(1, 100);
            Case::random(&mut rng, variant, n_rows, blocks, n_tokens, extra).check(&isas);
        }
        for cols in [2560, 6912] {
            let blocks = cols / variant.block_len();
            for (n_rows, n_tokens) in [(13, 1), (6, 5), (64, 3)] {
                Case::random(&mut rng, variant, n_rows, blocks, n_tokens, 17).check(&isas);
            }
        }
    }
}

/// Token counts 1..=9 (every token-tile remainder) and a 128-token prefill batch.
#[test]
fn ragged_tokens() {
    let isas = isas();
    let mut rng = Rng::new(4);
    for variant in VARIANTS {
        for n_tokens in (1..=9).chain([128]) {
            for n_rows in [1, 7, 64] {
                let blocks = rng.range(1, 20);
                let extra = rng.below(2) * rng.range(1, 64);
                Case::random(&mut rng, variant, n_rows, blocks, n_tokens, extra).check(&isas);
            }
        }
        Case::random(&mut rng, variant, 64, 2560 / variant.block_len(), 128, 0).check(&isas);
    }
}

/// Zero rows and constant rows: code 0 (ternary -1), code 1 (ternary 0) and code 2 (+1).
#[test]
fn constant_rows() {
    let isas = isas();
    let mut rng = Rng::new(5);
    for variant in VARIANTS {
        let cols = 7 * variant.block_len();
        for byte in [0x00, 0x55, 0xAA] {
            let mut case = Case::random(&mut rng, variant, 9, 7, 3, 5);
            let (start, len) = (case.w_off, case.weights.len());
            case.weights[start..len].fill(byte);
            let dots = case.check(&isas);
            let code = (byte & 3) as i32;
            for t in 0..3 {
                let sum: i32 = case.acts()[t * case.stride..][..cols]
                    .iter()
                    .map(|&a| a as i32)
                    .sum();
                assert!(dots[t * 9..][..9].iter().all(|&d| d == code * sum));
            }
        }
    }
}

/// All codes 2 against all -128 or all 127 at 16384 columns: |dot| ≈ 2^22, far past int16 (and
/// past what bitnet.cpp's wrapping int16 AVX2 accumulator survives). Must be exact.
#[test]
fn int16_overflow_is_exact() {
    let isas = isas();
    let cols = 4096 * 4;
    for variant in VARIANTS {
        for act in [-128i8, 127] {
            for (n_rows, n_tokens) in [(1, 1), (5, 3), (8, 4), (4, 9)] {
                let case = Case::filled(variant, n_rows, cols, n_tokens, cols + 3, 0xAA, act);
                let dots = case.check(&isas);
                let want = 2 * act as i32 * cols as i32;
                assert!(dots.iter().all(|&d| d == want), "{variant:?} act {act}");
            }
        }
    }
}

/// Activations at ±absmax (±127 after absmax quantization, and -128) with random codes.
#[test]
fn absmax_activations() {
    let isas = isas();
    let mut rng = Rng::new(6);
    for variant in VARIANTS {
        for (n_rows, blocks, n_tokens) in [(9, 40, 5), (70, 3, 9), (4, 128, 2)] {
            let mut case = Case::random(&mut rng, variant, n_rows, blocks, n_tokens, 7);
            for a in case.acts.iter_mut() {
                *a = [-128, -127, 127][rng.below(3)];
            }
            case.check(&isas);
            // Codes biased to 3 (Q2_0's +2) and activations to one sign: the worst case for
            // int16 lanes.
            for (i, w) in case.weights.iter_mut().enumerate() {
                *w = if i % 5 == 0 { rng.code_byte() } else { 0xFF };
            }
            for a in case.acts.iter_mut() {
                *a = if rng.below(8) == 0 { 127 } else { -128 };
            }
            case.check(&isas);
        }
    }
}

/// The largest `cols` a matrix may have (`MAX_COLS` = 2^22): |dot| reaches 2^30, and the
/// kernels' periodic int16/int32 widening and unscaling steps all run several times.
#[test]
fn max_cols_exact() {
    let isas = isas();
    let cols = tern::format::MAX_COLS;
    let mut rng = Rng::new(7);
    for variant in VARIANTS {
        for act in [-128i8, 127] {
            let case = Case::filled(variant, 4, cols, 3, cols, 0xAA, act);
            let dots = case.check(&isas);
            assert!(dots.iter().all(|&d| d == 2 * act as i32 * cols as i32));
        }
        let case = Case::random(&mut rng, variant, 3, cols / variant.block_len(), 2, 1);
        case.check(&isas);
    }
}

/// Prints the kernels these tests compare with the oracle (`cargo test -- --nocapture` shows
/// it; scripts/test-all.sh greps it). With `TERN_EXPECT_ISAS` set (space-separated ISA names,
/// e.g. "scalar neon dotprod i8mm"), fails unless exactly those levels are available: CI uses it
/// to prove that each emulated CPU model really ran the kernels it should.
#[test]
fn kernels_tested() {
    let names: Vec<String> = isas()
        .iter()
        .map(|&isa| {
            let kernel = Kernels::for_isa(isa).i2s_dots.name.to_str().unwrap();
            format!("{} ({kernel})", isa.name())
        })
        .collect();
    println!("kernel ISAs tested: {}", names.join(", "));
    if let Ok(want) = std::env::var("TERN_EXPECT_ISAS") {
        let got: Vec<&str> = isas().iter().map(|isa| isa.name()).collect();
        let want: Vec<&str> = want.split_whitespace().collect();
        assert_eq!(
            got, want,
            "available ISA levels differ from TERN_EXPECT_ISAS"
        );
    }
}

/// Token counts 1..=20: every token group and padded remainder of the widest tiles (the i8mm
/// tiles pair tokens and pad odd groups with a repeated token), with full and leftover rows.
#[test]
fn token_groups() {
    let isas = isas();
    let mut rng = Rng::new(8);
    for variant in VARIANTS {
        for n_tokens in 1..=20 {
            for n_rows in [1, 2, 3, 4, 5, 8, 11] {
                let blocks = rng.range(1, 6);
                let extra = rng.below(2) * rng.range(1, 33);
                Case::random(&mut rng, variant, n_rows, blocks, n_tokens, extra).check(&isas);
            }
        }
    }
}

/// Column counts around the kernels' column chunks (the aarch64 i8mm kernel interleaves the
/// activations 2048 columns at a time and adds the dots of later chunks), with row counts that
/// leave a row pair and a single row after the 4-row tiles, and padded token groups.
#[test]
fn column_chunks() {
    let isas = isas();
    let mut rng = Rng::new(9);
    for variant in VARIANTS {
        let l = variant.block_len();
        for cols in [2048 - l, 2048, 2048 + l, 3 * 2048 + l] {
            for (n_rows, n_tokens) in [(2, 2), (3, 3), (5, 8), (7, 9), (8, 7)] {
                let extra = rng.below(2) * rng.range(1, 40);
                Case::random(&mut rng, variant, n_rows, cols / l, n_tokens, extra).check(&isas);
            }
        }
    }
}

/// One token (the GEMV tiles, which keep some codes scaled in separate accumulators, e.g. the
/// aarch64 dotprod tile) at `MAX_COLS` with extreme activations: every periodic unscaling and
/// widening step runs, and |dot| reaches 2^30.
#[test]
fn gemv_max_cols_exact() {
    let isas = isas();
    let cols = tern::format::MAX_COLS;
    for variant in VARIANTS {
        for act in [-128i8, 127] {
            let case = Case::filled(variant, 5, cols, 1, cols, 0xAA, act);
            let dots = case.check(&isas);
            assert!(dots.iter().all(|&d| d == 2 * act as i32 * cols as i32));
        }
    }
}

/// Every panel kernel (`PanelDotsFn`) equals the scalar oracle on both layouts, ragged groups,
/// token counts across the micro-kernel blocks, runs of 1 to 3 tiles, dots per group and summed
/// over all groups, and extreme activations; and, through per-group scales (`TileScaling`), returns
/// the oracle's bits for both formulas (with and without block scales, ggml's Q8_0 order with
/// blocks of 1, 2, 3 and 4 dots), scales of mixed magnitude and sign, shared by every tile or not.
#[test]
fn panel_kernels_match_the_oracle() {
    use tern::kernel::panel::{PanelGeom, PanelKind, TILE_ROWS, interleave_acts, pack_tile};
    let mut rng = Rng::new(0x9a9e1);
    for (label, pk) in panel_sets() {
        let (mut ran, mut fused) = (0, 0);
        let kernels: Vec<_> = [
            (PanelKind::Codes2, Some(pk.bits2)),
            (PanelKind::Trits5, pk.bits16),
            (PanelKind::Bits1, pk.bits1),
        ]
        .into_iter()
        .filter_map(|(kind, k)| k.map(|k| (kind, k)))
        .collect();
        for (kind, k) in kernels {
            for iter in 0..40 {
                let group_steps = match (kind, iter % 4) {
                    (_, 0) => 64,
                    (PanelKind::Codes2, _) => 4 * rng.range(1, 6),
                    (PanelKind::Trits5, _) => rng.range(1, 23),
                    (PanelKind::Bits1, _) => 8 * rng.range(1, 5),
                };
                // Every fourth case in ggml's Q8_0 order, with weight blocks of 1, 2, 4 or 3 dots.
                let q8_0 = iter % 4 == 3;
                let per_block = [1, 2, 4, 3][iter / 4 % 4];
                let n_groups = if q8_0 {
                    per_block * rng.range(1, 3)
                } else {
                    rng.range(1, 5)
                };
                // Groups summed per dot: 1 (per-block scales) or all of them (one scale).
                let merge = if iter % 4 == 1 { n_groups } else { 1 };
                let geom = PanelGeom {
                    kind,
                    group_steps,
                    n_groups,
                    merge,
                };
                let n_tokens = if iter < 30 {
                    1 + iter
                } else {
                    rng.range(1, 40)
                };
                let cols = geom.cols();
                let n_tiles = 1 + iter % 3;
                let tb = geom.tile_bytes();
                // The cases with extreme activations (below) have all weights at their largest
                // code (`Codes2`: 3, Q2_0's +2; `Trits5` and `Bits1`: 2): the largest sums any accumulator,
                // the AVX2 kernel's int16 ones included, can see.
                let all_plus = iter % 7 < 2;
                let top = match kind {
                    PanelKind::Codes2 => 2,
                    PanelKind::Trits5 | PanelKind::Bits1 => 1,
                };
                let tern: Vec<i8> = (0..n_tiles * TILE_ROWS * cols)
                    .map(|_| match kind {
                        _ if all_plus => top,
                        // Signs only (Q1_0).
                        PanelKind::Bits1 => 2 * rng.below(2) as i8 - 1,
                        _ => rng.below(top as usize + 2) as i8 - 1,
                    })
                    .collect();
                let mut tiles = vec![0u8; n_tiles * tb + rng.below(3)];
                for (i, tile) in tiles.chunks_exact_mut(tb).enumerate() {
                    let tern = &tern[i * TILE_ROWS * cols..];
                    pack_tile(&geom, |r, c| tern[r * cols + c], tile);
                }
                let extreme = iter % 7;
                let q: Vec<i8> = (0..n_tokens * cols)
                    .map(|_| match extreme {
                        0 => -128,
                        1 => 127,
                        _ => rng.i8(),
                    })
                    .collect();
                let mut acts = vec![0i8; n_tokens * cols];
                interleave_acts(&q, cols, cols, n_tokens, cols, &mut acts);
                let nd = geom.n_dots();
                let n_out = n_tiles * n_tokens * nd * TILE_ROWS;
                let mut want = vec![0i32; n_out];
                scalar::panel_dots(&geom, &tiles, n_tiles, &acts, n_tokens, &mut want, None);
                // Independent check of the oracle on one entry of the last tile.
                let (i, t, d, r) = (n_tiles - 1, n_tokens - 1, nd - 1, TILE_ROWS - 1);
                let k_dot = 4 * group_steps * merge;
                let row = &tern[(i * TILE_ROWS + r) * cols..];
                let direct: i32 = (d * k_dot..(d + 1) * k_dot)
                    .map(|c| (row[c] as i32 + 1) * q[t * cols + c] as i32)
                    .sum();
                let at = ((i * n_tokens + t) * nd + d) * TILE_ROWS + r;
                assert_eq!(want[at], direct);
                let mut got = vec![i32::MIN; n_out];
                (k.run)(&geom, &tiles, n_tiles, &acts, n_tokens, &mut got, None);
                assert_eq!(
                    got, want,
                    "{label} {kind:?} {geom:?} tiles {n_tiles} tokens {n_tokens}"
                );
                // The same call through per-group scales (`TileScaling`): the scalar oracle's
                // bits for each formula, with scales of mixed magnitude and sign.
                let q8_0_block = q8_0.then_some(per_block);
                let n_scales = nd / q8_0_block.unwrap_or(1) * TILE_ROWS;
                let stride = if iter % 5 == 0 { 0 } else { n_scales };
                let scale = |rng: &mut Rng| {
                    let m = (rng.next() >> 40) as f32 / (1u64 << 24) as f32 + 0.5;
                    let s = m * [6e-8f32, 1e-3, 0.02, 1.0, 37.5][rng.below(5)];
                    if rng.below(4) == 0 { -s } else { s }
                };
                // Weight block scales are f16 (subnormal ones included), as the formats store.
                let scales: Vec<f16> = (0..(n_tiles - 1) * stride + n_scales)
                    .map(|_| f16::from_f32(scale(&mut rng)))
                    .collect();
                let gsums: Vec<i32> = (0..n_tokens * nd)
                    .map(|i| {
                        let (t, d) = (i / nd, i % nd);
                        q[t * cols + d * k_dot..][..k_dot]
                            .iter()
                            .map(|&v| v as i32)
                            .sum()
                    })
                    .collect();
                // In the Q8_0 order, activation block scales are f16 values as ggml's (the
                // kernels then fuse each product, `q8_0_offsets`), except in every other case,
                // and one is infinite (an f16 overflow) in every fourth of those: without exact offsets
                // the kernels scale in the oracle's own form.
                let f16_blocks = q8_0 && iter / 4 % 2 == 0;
                let mut block: Vec<f32> = (0..n_tokens * nd)
                    .map(|_| match scale(&mut rng) {
                        s if f16_blocks => f16::from_f32(s).to_f32(),
                        s => s,
                    })
                    .collect();
                if q8_0 && iter / 4 % 4 == 2 {
                    block[rng.below(n_tokens * nd)] = f32::INFINITY;
                }
                let mut offsets = vec![f32::NAN; n_tokens * nd];
                let exact = q8_0 && tern::kernel::q8_0_offsets(&gsums, &block, &mut offsets);
                fused += usize::from(exact);
                let with_block = q8_0_block.is_some() || iter % 2 == 0;
                let scaled = |kernel: tern::kernel::PanelDotsFn| {
                    let mut acc = vec![f32::NAN; n_tiles * n_tokens * TILE_ROWS];
                    let mut work = vec![i32::MIN; n_tokens * nd * TILE_ROWS];
                    let mut scaling = TileScaling {
                        scales: &scales,
                        stride,
                        gsums: &gsums,
                        block_scales: with_block.then_some(&block[..]),
                        q8_0_block,
                        q8_0_offsets: exact.then_some(&offsets[..]),
                        acc: &mut acc,
                    };
                    kernel(
                        &geom,
                        &tiles,
                        n_tiles,
                        &acts,
                        n_tokens,
                        &mut work,
                        Some(&mut scaling),
                    );
                    acc.iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
                };
                assert_eq!(
                    scaled(k.run),
                    scaled(scalar::panel_dots),
                    "{label} {kind:?} {geom:?} tiles {n_tiles} tokens {n_tokens} scaled \
                     (Q8_0 blocks {q8_0_block:?}, block scales {with_block}, stride {stride}, \
                     offsets {exact})"
                );
                ran += 1;
            }
        }
        // Every kind has Q8_0 cases with f16 block scales and 32-column dots (sums within 2^13).
        assert!(fused > 0, "{label}: no Q8_0 case with exact offsets");
        println!("{label}: {ran} panel kernel cases, {fused} with Q8_0 offsets");
    }
}

/// A panel kernel refuses, with a message, a call whose buffers are too short for its tiles or
/// scales or whose groups cannot be summed as asked (it reads and writes through raw pointers).
#[test]
fn panel_kernels_reject_bad_calls() {
    use tern::kernel::panel::{MAX_DOT_STEPS, PanelGeom, PanelKind, TILE_ROWS};
    let geom = PanelGeom {
        kind: PanelKind::Codes2,
        group_steps: 64,
        n_groups: 4,
        merge: 1,
    };
    let mut checked = 0;
    for (label, pk) in panel_sets() {
        let run = |geom: PanelGeom, tiles: usize, n_tiles: usize, dots: usize| {
            let (tiles, acts) = (vec![0u8; tiles], vec![0i8; geom.cols()]);
            let mut dots = vec![0i32; dots];
            let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                (pk.bits2.run)(&geom, &tiles, n_tiles, &acts, 1, &mut dots, None)
            }))
            .expect_err("the call must be refused");
            // A message without arguments panics with a `&str`, a formatted one with a `String`.
            match err.downcast_ref::<&str>() {
                Some(msg) => msg.to_string(),
                None => err.downcast_ref::<String>().cloned().unwrap_or_default(),
            }
        };
        let (tb, nd) = (geom.tile_bytes(), geom.n_groups * TILE_ROWS);
        let msg = run(geom, 2 * tb - 1, 2, 2 * nd);
        assert!(msg.contains("tiles hold"), "{label}: {msg}");
        let msg = run(geom, 2 * tb, 2, 2 * nd - 1);
        assert!(msg.contains("dots holds"), "{label}: {msg}");
        for merge in [0, 3, MAX_DOT_STEPS / 64 * 2] {
            let geom = PanelGeom {
                merge,
                n_groups: if merge > 4 { merge } else { 4 },
                ..geom
            };
            let msg = run(geom, geom.tile_bytes(), 1, geom.n_groups * TILE_ROWS);
            assert!(
                msg.contains("cannot be summed"),
                "{label} merge {merge}: {msg}"
            );
        }
        // Per-group scales that do not cover the call: short results, scales or sums, no block
        // scales for the Q8_0 order, short offsets or offsets outside the Q8_0 order, dots that
        // make no whole weight blocks.
        let scaled = |(acc, scales, sums): (usize, usize, usize),
                      q8_0: Option<(usize, usize)>,
                      offsets: Option<usize>| {
            let (tiles, acts) = (vec![0u8; 2 * tb], vec![0i8; geom.cols()]);
            let (scales, gsums) = (vec![f16::ONE; scales], vec![0i32; sums]);
            let block = vec![1f32; q8_0.map_or(0, |q| q.1)];
            let offsets = offsets.map(|n| vec![0f32; n]);
            let (mut acc, mut dots) = (vec![0f32; acc], vec![0i32; nd]);
            let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut scaling = TileScaling {
                    scales: &scales,
                    stride: 4 * TILE_ROWS,
                    gsums: &gsums,
                    block_scales: q8_0.map(|_| &block[..]),
                    q8_0_block: q8_0.map(|q| q.0),
                    q8_0_offsets: offsets.as_deref(),
                    acc: &mut acc,
                };
                (pk.bits2.run)(&geom, &tiles, 2, &acts, 1, &mut dots, Some(&mut scaling))
            }))
            .expect_err("the call must be refused");
            err.downcast_ref::<String>().cloned().unwrap_or_default()
        };
        let full = (2 * TILE_ROWS, 8 * TILE_ROWS, 4);
        for (sizes, q8_0, offsets) in [
            ((full.0 - 1, full.1, full.2), None, None),
            ((full.0, full.1 - 1, full.2), None, None),
            ((full.0, full.1, full.2 - 1), None, None),
            (full, Some((2, 0)), None),
            (full, Some((2, 4)), Some(3)),
            (full, None, Some(4)),
        ] {
            let msg = scaled(sizes, q8_0, offsets);
            assert!(msg.contains("the scales of 2 tiles"), "{label}: {msg}");
        }
        let msg = scaled(full, Some((3, 4)), None);
        assert!(msg.contains("weight blocks of 3"), "{label}: {msg}");
        if pk.bits16.is_none() {
            // No 1.6-bit kernel: the 2-bit one refuses that layout.
            let geom = PanelGeom {
                kind: PanelKind::Trits5,
                ..geom
            };
            let msg = run(geom, geom.tile_bytes(), 1, geom.n_groups * TILE_ROWS);
            assert!(msg.contains("1.6-bit"), "{label}: {msg}");
        }
        checked += 1;
    }
    println!("{checked} panel kernel sets checked");
}

/// The message with which `run` refuses a one-tile, one-token call (on a CPU that lacks its
/// instructions).
#[cfg(target_arch = "x86_64")]
fn refusal(run: tern::kernel::PanelDotsFn) -> String {
    use tern::kernel::panel::{PanelGeom, PanelKind, TILE_ROWS};
    let geom = PanelGeom {
        kind: PanelKind::Codes2,
        group_steps: 4,
        n_groups: 1,
        merge: 1,
    };
    let (tiles, acts) = (vec![0u8; geom.tile_bytes()], vec![0i8; geom.cols()]);
    let mut dots = vec![0i32; TILE_ROWS];
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run(&geom, &tiles, 1, &acts, 1, &mut dots, None)
    }))
    .expect_err("the call must be refused");
    err.downcast_ref::<&str>()
        .copied()
        .unwrap_or_default()
        .to_string()
}

/// On a CPU without AVX-VNNI the AVX-VNNI kernel refuses to run (with a message) instead of
/// executing instructions the CPU lacks.
#[cfg(target_arch = "x86_64")]
#[test]
fn avxvnni_kernel_refuses_cpus_without_it() {
    if Isa::AvxVnni.is_available() {
        println!("skipped: this CPU has AVX-VNNI, so the kernel runs (the oracle tests cover it)");
        return;
    }
    let msg = refusal(tern::kernel::x86::panel_dots_avxvnni);
    assert!(msg.contains("needs AVX2, FMA, F16C and AVX-VNNI"), "{msg}");
}

/// On a CPU without AVX-512BW (the CI runs the tests under `qemu-x86_64 -cpu max`, AVX2 only)
/// the AVX-512BW panel kernel refuses to run (with a message) instead of executing instructions
/// the CPU lacks.
#[cfg(target_arch = "x86_64")]
#[test]
fn avx512bw_panel_kernel_refuses_cpus_without_it() {
    if Isa::Avx512.is_available() {
        println!("skipped: this CPU has AVX-512BW, so the kernel runs (the oracle tests cover it)");
        return;
    }
    let msg = refusal(tern::kernel::x86::panel_dots_bw);
    assert!(msg.contains("needs AVX-512 F and BW"), "{msg}");
}

/// `q8_0_offsets` says its products are exact only when they are: ggml's f16 scales times
/// 32-column sums are; an infinite scale, an f32 scale of 24 significant bits times a sum that
/// needs more than the rest, and a sum beyond 2^24 are not. The offsets are the products.
#[test]
fn q8_0_offsets_are_exact_or_refused() {
    use tern::kernel::q8_0_offsets;
    let mut rng = Rng::new(0x0ff5e7);
    let mut out = vec![0f32; 64];
    let gsums: Vec<i32> = (0..64).map(|_| rng.range(0, 8192) as i32 - 4096).collect();
    let f16_scales: Vec<f32> = (0..64)
        .map(|_| f16::from_bits(rng.below(0x7c00) as u16).to_f32())
        .collect();
    assert!(q8_0_offsets(&gsums, &f16_scales, &mut out));
    for ((&o, &g), &b) in out.iter().zip(&gsums).zip(&f16_scales) {
        assert_eq!(f64::from(o), -f64::from(b) * f64::from(g), "{b} × {g}");
    }
    let refused: [(&str, i32, f32); 4] = [
        ("infinite scale", 3, f32::INFINITY),
        ("NaN scale", 3, f32::NAN),
        ("24-bit scale × 3", 3, 1.0 + f32::EPSILON),
        ("sum beyond 2^24", (1 << 24) + 1, 1.0),
    ];
    for (what, g, b) in refused {
        let (mut g_all, mut b_all) = (gsums.clone(), f16_scales.clone());
        (g_all[17], b_all[17]) = (g, b);
        assert!(
            !q8_0_offsets(&g_all, &b_all, &mut out),
            "{what} passed as exact"
        );
    }
}

//! The activation quantizer of every ISA level this CPU runs (AVX-512 or AVX2 on x86) is
//! bit-identical with its scalar definition in every per-token arithmetic, on adversarial
//! inputs: exact ties at every rounding boundary, NaN, ±inf, ±0, huge and tiny values, every
//! tail length.

use super::{Arith, QuantizeTokenFn};
use crate::kernel::{Isa, Kernels};

const MODES: [Arith; 4] = [
    Arith::Default,
    Arith::I2sCurrent,
    Arith::I2sLegacy,
    Arith::Lut,
];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

/// The activation quantizer of every ISA level this CPU runs (its `Kernels` row).
fn quantizers() -> Vec<(&'static str, QuantizeTokenFn)> {
    Isa::available()
        .map(|isa| (isa.name(), Kernels::for_isa(isa).quantize_token))
        .collect()
}

fn check(x: &[f32], what: &str) {
    for mode in MODES {
        let mut b = vec![0x55i8; x.len()];
        let (sb, tb) = mode.quantize_token_scalar(x, &mut b);
        for (isa, quantize) in quantizers() {
            // Through the entry point (scalar below 16 values) and the level's quantizer itself
            // (at every length, tails included).
            let mut a = vec![0x55i8; x.len()];
            let (sa, ta) = mode.quantize_token(quantize, x, &mut a);
            assert_eq!(
                (sa.to_bits(), ta),
                (sb.to_bits(), tb),
                "{mode:?} {what} {isa}"
            );
            assert_eq!(a, b, "{mode:?} {what}: q {isa}");
            let mut c = vec![0x55i8; x.len()];
            let (sc, tc) = quantize(mode, x, &mut c);
            assert_eq!(
                (sc.to_bits(), tc),
                (sb.to_bits(), tb),
                "{mode:?} {what} {isa} direct"
            );
            assert_eq!(c, b, "{mode:?} {what}: q {isa} direct");
        }
    }
}

#[test]
fn simd_quantizer_is_bit_exact() {
    let names: Vec<&str> = quantizers().iter().map(|q| q.0).collect();
    println!("quantizers of the levels: {}", names.join(", "));
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for n in 0..200 {
        let x: Vec<f32> = (0..n).map(|_| rng.f() * 3.0).collect();
        check(&x, &format!("random n={n}"));
    }
    // Ties: absmax 127 makes the scale exactly 1, so k + 0.5 are exact halves.
    for n in [16, 17, 31, 64, 100, 257] {
        let mut x: Vec<f32> = (0..n).map(|i| (i as f32 % 40.0) - 20.0 + 0.5).collect();
        x[0] = 127.0;
        check(&x, &format!("ties n={n}"));
        x[0] = -127.0;
        for v in x.iter_mut().skip(1) {
            *v = -*v;
        }
        check(&x, &format!("negative ties n={n}"));
        // Just below and above halves.
        let mut y = x.clone();
        for v in y.iter_mut().skip(1) {
            *v = f32::from_bits(v.to_bits() + 1);
        }
        check(&y, &format!("above ties n={n}"));
        for v in x.iter_mut().skip(1) {
            *v = f32::from_bits(v.to_bits() - 1);
        }
        check(&x, &format!("below ties n={n}"));
    }
    let specials = [
        0.0,
        -0.0,
        f32::NAN,
        -f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        f32::MIN_POSITIVE,
        1e-30,
        -1e-30,
        1e-6,
        3e38,
        0.5,
        -0.5,
        1.5,
        -2.5,
    ];
    for n in [1, 15, 16, 17, 33, 80, 129] {
        for (k, &s) in specials.iter().enumerate() {
            let mut x: Vec<f32> = (0..n).map(|_| rng.f()).collect();
            x[(k * 7) % n] = s;
            check(&x, &format!("special {s} n={n}"));
            let all: Vec<f32> = vec![s; n];
            check(&all, &format!("all {s} n={n}"));
        }
        check(&vec![0.0; n], "zeros");
        let tiny: Vec<f32> = (0..n).map(|i| (i as f32 - 7.0) * 1e-7).collect();
        check(&tiny, "tiny (below the legacy floor)");
    }
    // Batch entry point (strided) equals per-token scalar.
    let (cols, tokens, stride) = (300, 5, 311);
    let x: Vec<f32> = (0..tokens * stride).map(|_| rng.f() * 10.0).collect();
    for mode in MODES {
        for (isa, quantize) in quantizers() {
            let mut q = vec![0i8; tokens * cols];
            let mut s = vec![0f32; tokens];
            let mut sums = vec![0i32; tokens];
            mode.quantize_batch(
                quantize,
                &x,
                stride,
                cols,
                tokens,
                &mut q,
                cols,
                &mut s,
                Some(&mut sums),
            );
            for t in 0..tokens {
                let mut r = vec![0i8; cols];
                let (sc, su) = mode.quantize_token_scalar(&x[t * stride..][..cols], &mut r);
                let got = (s[t].to_bits(), sums[t]);
                assert_eq!(got, (sc.to_bits(), su), "{mode:?} batch token {t} {isa}");
                assert_eq!(
                    &q[t * cols..][..cols],
                    &r[..],
                    "{mode:?} batch token {t} {isa}"
                );
            }
        }
    }
}

/// On a CPU without AVX-512 F/BW (or AVX2) that level's quantizer refuses to run, with a message,
/// instead of executing instructions the CPU lacks.
#[cfg(target_arch = "x86_64")]
#[test]
fn quantizers_refuse_cpus_without_their_level() {
    use super::{quantize_token_avx2, quantize_token_avx512};
    let cases: [(Isa, QuantizeTokenFn, &str); 2] = [
        (Isa::Avx2, quantize_token_avx2, "needs AVX2"),
        (Isa::Avx512, quantize_token_avx512, "needs AVX-512 F and BW"),
    ];
    for (isa, quantize, want) in cases {
        if isa.is_available() {
            println!(
                "skipped: this CPU has {}, so its quantizer runs (tested above)",
                isa.name()
            );
            continue;
        }
        let (x, mut q) = ([1.0f32; 32], [0i8; 32]);
        let err = std::panic::catch_unwind(move || quantize(Arith::Default, &x, &mut q))
            .expect_err("the quantizer ran without its CPU level");
        let msg = err
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| err.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        assert!(msg.contains(want), "{}: {msg}", isa.name());
    }
}

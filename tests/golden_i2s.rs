//! I2_S against the golden vectors produced by the real bitnet.cpp code (tests/data/README.md):
//! packed bytes of both layouts, int8 activations, raw dots and final outputs, bit for bit,
//! through the C API, for every kernel this CPU has and with 1 and 2 threads.

mod common;

use common::*;
use tern::ffi::ggml::tern_ggml_vec_dot_i2_i8_s;
use tern::ffi::*;

struct Case {
    name: &'static str,
    weights: &'static str,
    acts: &'static str,
    m: usize,
    k: usize,
    t: usize,
}

const CASES: &[Case] = &[
    Case {
        name: "s256x256",
        weights: "s256x256",
        acts: "s256x256.acts",
        m: 256,
        k: 256,
        t: 1,
    },
    Case {
        name: "s256x256_t8",
        weights: "s256x256",
        acts: "s256x256.acts8",
        m: 256,
        k: 256,
        t: 8,
    },
    Case {
        name: "s320x3200",
        weights: "s320x3200",
        acts: "s320x3200.acts",
        m: 320,
        k: 3200,
        t: 1,
    },
    Case {
        name: "s64x6912",
        weights: "s64x6912",
        acts: "s64x6912.acts",
        m: 64,
        k: 6912,
        t: 1,
    },
    Case {
        name: "s256x1536",
        weights: "s256x1536",
        acts: "s256x1536.acts",
        m: 256,
        k: 1536,
        t: 1,
    },
    Case {
        name: "edge_overflow4x4096",
        weights: "edge_overflow4x4096",
        acts: "edge_overflow4x4096.acts",
        m: 4,
        k: 4096,
        t: 1,
    },
    Case {
        name: "edge_ties256",
        weights: "s256x256",
        acts: "edge_ties256.acts",
        m: 256,
        k: 256,
        t: 1,
    },
];

const OVERFLOW: &str = "edge_overflow4x4096";
const VARIANTS: [(u32, &str); 2] = [(0, "x86"), (1, "arm")];
/// (compat, golden suffix) pairs that bitnet.cpp defines.
const MODES: [(i32, &str); 2] = [(1, "current"), (2, "legacy")];

fn weights(c: &Case) -> Vec<f32> {
    read_f32(&format!("inputs/{}.weights_f32.bin", c.weights))
}

fn acts(c: &Case) -> Vec<f32> {
    read_f32(&format!("inputs/{}_f32.bin", c.acts))
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Packs a case's weights with PRESCALED (bitnet.cpp `quantize_i2_s`) in the given variant.
fn pack(c: &Case, variant: u32) -> Vec<u8> {
    let l = i2s(variant);
    let mut size = 0usize;
    assert_eq!(
        unsafe { tern_packed_size(&l, c.m as i64, c.k as i64, &mut size) },
        tern_status::TERN_STATUS_OK
    );
    let mut out = vec![0xAAu8; size];
    let w = weights(c);
    let opts = quant_options(tern_quant_method::TERN_QUANT_PRESCALED as i32);
    let st = unsafe {
        tern_quantize(
            std::ptr::null(),
            &l,
            w.as_ptr(),
            c.m as i64,
            c.k as i64,
            &opts,
            out.as_mut_ptr().cast(),
            out.len(),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(st, tern_status::TERN_STATUS_OK, "{}", last_error());
    out
}

#[test]
fn packed_bytes_match_both_layouts() {
    for c in CASES
        .iter()
        .filter(|c| c.t == 1 && c.name != "edge_ties256")
    {
        for (variant, tag) in VARIANTS {
            let golden = read_bytes(&format!("i2s/{}.i2s_{tag}_packed.bin", c.name));
            let ours = pack(c, variant);
            assert_eq!(ours.len(), c.m * c.k / 4 + 32);
            assert_eq!(ours, golden, "{} {tag}: packed bytes differ", c.name);
        }
    }
}

#[test]
fn activation_codes_scales_and_sums_match() {
    for c in CASES {
        for (compat, tag) in MODES {
            let x = acts(c);
            let mut q = vec![0i8; c.t * c.k];
            let mut scales = vec![0f32; c.t];
            let mut sums = vec![0i32; c.t];
            let st = unsafe {
                tern_quantize_activations(
                    std::ptr::null(),
                    x.as_ptr(),
                    c.t as i64,
                    c.k as i64,
                    0,
                    compat,
                    q.as_mut_ptr(),
                    scales.as_mut_ptr(),
                    sums.as_mut_ptr(),
                )
            };
            assert_eq!(st, tern_status::TERN_STATUS_OK, "{}", last_error());
            assert_eq!(
                q,
                read_i8(&format!("i2s/{}.act_{tag}_i8.bin", c.name)),
                "{} {tag}: int8 codes",
                c.name
            );
            let (gs, gsum) =
                read_scale_sum(&format!("i2s/{}.act_{tag}_scale_sum.bin", c.name), c.t);
            assert_eq!(bits(&scales), bits(&gs), "{} {tag}: scales", c.name);
            assert_eq!(sums, gsum, "{} {tag}: sums", c.name);
        }
    }
}

/// Raw code dots through the ggml tier (x86 layout), one `nrc = 1` call per row as bitnet.cpp's
/// GEMV does.
fn raw_dots(c: &Case, packed: &[u8], q: &[i8]) -> Vec<f32> {
    let mut out = vec![0f32; c.t * c.m];
    for t in 0..c.t {
        for r in 0..c.m {
            unsafe {
                tern_ggml_vec_dot_i2_i8_s(
                    c.k as i32,
                    &mut out[t * c.m + r],
                    1,
                    packed[r * c.k / 4..].as_ptr().cast(),
                    c.k,
                    q[t * c.k..].as_ptr().cast(),
                    c.k,
                    1,
                );
            }
        }
    }
    out
}

#[test]
fn raw_dots_match_and_overflow_case_is_exact() {
    for c in CASES {
        let packed = pack(c, 0);
        for (_, tag) in MODES {
            let q = read_i8(&format!("i2s/{}.act_{tag}_i8.bin", c.name));
            let ours = raw_dots(c, &packed, &q);
            let golden = read_f32(&format!("i2s/{}.rawdot_{tag}_f32.bin", c.name));
            if c.name == OVERFLOW {
                // bitnet.cpp's x86 kernel wraps its int16 accumulator here; ARM+dotprod is exact.
                let exact = read_f32(&format!("i2s/{OVERFLOW}.rawdot_legacy_arm_dotprod_f32.bin"));
                assert_eq!(ours, exact, "overflow case must be exact");
                assert_eq!(ours, vec![1040384.0, 0.0, 780288.0, 780288.0]);
                assert_ne!(golden, exact, "the x86 golden file records the int16 wrap");
            } else {
                assert_eq!(bits(&ours), bits(&golden), "{} {tag}: raw dots", c.name);
            }
        }
    }
}

/// The golden output of a case, or for the overflow case the bitnet.cpp epilogue applied to the
/// exact raw dots (its x86 outputs come from wrapped dots).
fn expected_output(c: &Case, tag: &str) -> Vec<f32> {
    if c.name != OVERFLOW {
        return read_f32(&format!("i2s/{}.out_{tag}_f32.bin", c.name));
    }
    let dots = read_f32(&format!("i2s/{OVERFLOW}.rawdot_legacy_arm_dotprod_f32.bin"));
    let (s, sum) = read_scale_sum(&format!("i2s/{OVERFLOW}.act_{tag}_scale_sum.bin"), 1);
    let w_scale = f32::from_le_bytes(pack(c, 0)[c.m * c.k / 4..][..4].try_into().unwrap());
    let sum = sum[0] as f32;
    dots.iter()
        .map(|&d| match tag {
            "current" => (d - sum) * (w_scale / s[0]),
            _ => ((d - sum) / s[0]) * w_scale,
        })
        .collect()
}

fn matrix_from_golden(
    ctx: *const tern_context,
    c: &Case,
    variant: u32,
    tag: &str,
) -> *mut tern_matrix {
    let packed = read_bytes(&format!("i2s/{}.i2s_{tag}_packed.bin", c.weights));
    let mut m = std::ptr::null_mut();
    let l = i2s(variant);
    let st = unsafe {
        tern_matrix_create(
            ctx,
            &l,
            packed.as_ptr().cast(),
            packed.len(),
            c.m as i64,
            c.k as i64,
            &mut m,
        )
    };
    assert_eq!(st, tern_status::TERN_STATUS_OK, "{}", last_error());
    m
}

#[test]
fn gemm_outputs_are_bit_exact_for_every_kernel_layout_mode_and_thread_count() {
    for isa in available_isas() {
        for threads in [1, 2] {
            let ctx = context(isa, threads);
            for c in CASES {
                let x = acts(c);
                for (variant, vtag) in VARIANTS {
                    let m = matrix_from_golden(ctx, c, variant, vtag);
                    for (compat, tag) in MODES {
                        let want = expected_output(c, tag);
                        let mut y = vec![f32::NAN; c.t * c.m];
                        let opts = gemm_options(compat);
                        let st = unsafe {
                            tern_gemm(ctx, m, x.as_ptr(), c.t as i64, 0, y.as_mut_ptr(), 0, &opts)
                        };
                        assert_eq!(st, tern_status::TERN_STATUS_OK, "{}", last_error());
                        assert_eq!(
                            bits(&y),
                            bits(&want),
                            "{} {vtag} {tag} isa {isa} threads {threads}",
                            c.name
                        );

                        // Same through tern_gemm_i8 with bitnet.cpp's own int8 activations.
                        let q = read_i8(&format!("i2s/{}.act_{tag}_i8.bin", c.name));
                        let (s, sums) =
                            read_scale_sum(&format!("i2s/{}.act_{tag}_scale_sum.bin", c.name), c.t);
                        let mut y8 = vec![f32::NAN; c.t * c.m];
                        let st = unsafe {
                            tern_gemm_i8(
                                ctx,
                                m,
                                q.as_ptr(),
                                s.as_ptr(),
                                sums.as_ptr(),
                                c.t as i64,
                                0,
                                y8.as_mut_ptr(),
                                0,
                                &opts,
                            )
                        };
                        assert_eq!(st, tern_status::TERN_STATUS_OK, "{}", last_error());
                        assert_eq!(bits(&y8), bits(&want), "{} {vtag} {tag} gemm_i8", c.name);
                    }
                    unsafe { tern_matrix_destroy(m) };
                }
            }
            unsafe { tern_context_destroy(ctx) };
        }
    }
}

#[test]
fn default_mode_equals_current_bitnet_cpp_where_there_are_no_ties() {
    // DEFAULT rounds half-to-even, bitnet.cpp today half away from zero; on the random cases no
    // product is an exact tie, so the outputs must agree bit for bit.
    for c in CASES.iter().filter(|c| !c.name.starts_with("edge_")) {
        let m = matrix_from_golden(std::ptr::null(), c, 0, "x86");
        let x = acts(c);
        let mut y = vec![0f32; c.t * c.m];
        let opts = gemm_options(tern_compat::TERN_COMPAT_DEFAULT as i32);
        let st = unsafe {
            tern_gemm(
                std::ptr::null(),
                m,
                x.as_ptr(),
                c.t as i64,
                0,
                y.as_mut_ptr(),
                0,
                &opts,
            )
        };
        assert_eq!(st, tern_status::TERN_STATUS_OK);
        assert_eq!(bits(&y), bits(&expected_output(c, "current")), "{}", c.name);
        unsafe { tern_matrix_destroy(m) };
    }
}

#[test]
fn ties_case_distinguishes_the_rounding_modes() {
    let c = CASES.iter().find(|c| c.name == "edge_ties256").unwrap();
    let legacy = read_i8("i2s/edge_ties256.act_legacy_i8.bin");
    let current = read_i8("i2s/edge_ties256.act_current_i8.bin");
    let differing = legacy.iter().zip(&current).filter(|(a, b)| a != b).count();
    assert_eq!(differing, 124, "README: 124 of 256 codes differ on ties");
    // DEFAULT rounds like legacy (half-to-even) but with f32 scale arithmetic.
    let x = acts(c);
    let mut q = vec![0i8; c.k];
    let mut s = [0f32];
    let st = unsafe {
        tern_quantize_activations(
            std::ptr::null(),
            x.as_ptr(),
            1,
            c.k as i64,
            0,
            0,
            q.as_mut_ptr(),
            s.as_mut_ptr(),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(st, tern_status::TERN_STATUS_OK);
    assert_eq!(q, legacy);
    assert_eq!(s[0], 1.0);
}

#[test]
fn ggml_tier_quantize_i2_s_writes_the_golden_bytes() {
    for c in CASES
        .iter()
        .filter(|c| c.t == 1 && c.name != "edge_ties256")
    {
        let w = weights(c);
        let mut out = vec![0xAAu8; c.m * c.k / 4 + 32];
        let n = unsafe {
            tern::ffi::ggml::tern_ggml_quantize_i2_s(
                w.as_ptr(),
                out.as_mut_ptr().cast(),
                c.m as i64,
                c.k as i64,
                std::ptr::null(),
            )
        };
        assert_eq!(n, out.len());
        assert_eq!(
            out,
            read_bytes(&format!("i2s/{}.i2s_x86_packed.bin", c.name)),
            "{}",
            c.name
        );
    }
}

#[test]
fn ggml_tier_activation_quantizers_match_both_forks() {
    for c in CASES {
        let x = acts(c);
        for (tag, f) in [
            (
                "current",
                tern::ffi::ggml::tern_ggml_quantize_row_i8_s
                    as unsafe extern "C" fn(
                        *const f32,
                        *mut std::ffi::c_void,
                        i64,
                        *mut f32,
                        *mut i32,
                    ),
            ),
            (
                "legacy",
                tern::ffi::ggml::tern_ggml_quantize_row_i8_s_legacy,
            ),
        ] {
            let (gs, gsum) =
                read_scale_sum(&format!("i2s/{}.act_{tag}_scale_sum.bin", c.name), c.t);
            let gq = read_i8(&format!("i2s/{}.act_{tag}_i8.bin", c.name));
            for t in 0..c.t {
                let mut q = vec![0i8; c.k];
                let (mut s, mut sum) = (0f32, 0i32);
                unsafe {
                    f(
                        x[t * c.k..].as_ptr(),
                        q.as_mut_ptr().cast(),
                        c.k as i64,
                        &mut s,
                        &mut sum,
                    )
                };
                assert_eq!(q, gq[t * c.k..][..c.k], "{} {tag} t{t}", c.name);
                assert_eq!(
                    (s.to_bits(), sum),
                    (gs[t].to_bits(), gsum[t]),
                    "{} {tag} t{t}",
                    c.name
                );
            }
        }
    }
}

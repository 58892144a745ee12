//! The machine limits `bench --peers` compares against, measured in the same run: the L3 size,
//! streaming-read bandwidth, and the per-core int8 and f32 FMA peaks of the ISA the kernels run.
#![allow(clippy::needless_range_loop)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tern::context::Context;
#[cfg(target_arch = "x86_64")]
use tern::kernel::Isa;
use tern::pages::PageBuf;

pub const MIB: usize = 1 << 20;

pub fn l3_bytes() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cache/index3/size")
        .ok()
        .and_then(|s| {
            let s = s.trim();
            let (n, mul) = match s.strip_suffix('K') {
                Some(n) => (n, 1 << 10),
                None => match s.strip_suffix('M') {
                    Some(n) => (n, 1 << 20),
                    None => (s, 1),
                },
            };
            n.parse::<usize>().ok().map(|n| n * mul)
        })
        .unwrap_or(32 * MIB)
        .max(8 * MIB)
}

/// The streaming-read buffer, on huge pages like the tern matrices' tiles: a heap `Vec` of this
/// size gets 4 KiB pages, whose TLB misses would slow the read and flatter every GEMV's fraction.
pub fn big_buffer(n: usize) -> PageBuf {
    let mut b = PageBuf::zeroed(n, "the streaming-read buffer").unwrap_or_else(|e| panic!("{e}"));
    for (i, v) in b.iter_mut().enumerate() {
        *v = ((i * 131) >> 7) as u8;
    }
    b
}

/// Sums a buffer as u64 words (a streaming read the compiler vectorizes), prefetching 4 KiB
/// ahead up to the buffer's end as the decode kernels do, so a short read ramps up as fast as a
/// GEMV.
pub fn read_sum(b: &[u8]) -> u64 {
    let mut acc = [0u64; 8];
    // SAFETY: any bytes are valid u64s; the unaligned head and tail are skipped.
    let (_, words, _) = unsafe { b.align_to::<u64>() };
    #[cfg(target_arch = "x86_64")]
    let end = words.as_ptr_range().end.cast::<i8>();
    for c in words.chunks_exact(8) {
        #[cfg(target_arch = "x86_64")]
        {
            let line = c.as_ptr().cast::<i8>().wrapping_add(4096);
            if line < end {
                // SAFETY: a prefetch is a hint; it never faults.
                unsafe {
                    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
                    _mm_prefetch::<_MM_HINT_T0>(line);
                }
            }
        }
        for j in 0..8 {
            acc[j] ^= c[j];
        }
    }
    std::hint::black_box(acc.iter().fold(0, |a, &v| a ^ v))
}

/// Makes sure every worker of the context's pool is awake (spinning) before a timed call, as in
/// inference, where one GEMV follows another within the pool's spin window: after a long gap
/// (the big read, the f32 baseline) waking a sleeping worker would be charged to whichever
/// implementation came next. Gives up after 50 ms (a worker that cannot run).
pub fn wake_workers(ctx: &Context) {
    let n = ctx.threads.count();
    let started = AtomicUsize::new(0);
    let t0 = Instant::now();
    ctx.threads.for_each(n, |_| {
        started.fetch_add(1, Ordering::SeqCst);
        while started.load(Ordering::SeqCst) < n && t0.elapsed().as_millis() < 50 {
            std::hint::spin_loop();
        }
    });
}

/// How long every DRAM-timed buffer is streamed over and over before a shape's rounds.
const SETTLE: Duration = Duration::from_secs(1);

/// Streams `bufs` for `SETTLE`, untimed: on a VM, memory written for the first time can stream
/// slowly for a while (the host backs it lazily), which would land on whichever implementation
/// owns that memory.
pub fn settle(bufs: Vec<&[u8]>) {
    let t0 = Instant::now();
    while t0.elapsed() < SETTLE {
        for b in &bufs {
            std::hint::black_box(read_sum(b));
        }
    }
}

/// One streaming read of `buf` split in contiguous parts over the context's threads; seconds.
pub fn time_read(ctx: &Context, buf: &[u8]) -> f64 {
    let n = ctx.threads.count();
    let t0 = Instant::now();
    ctx.threads.for_each(n, |i| {
        let part = buf.len() / n;
        read_sum(&buf[i * part..(i + 1) * part]);
    });
    t0.elapsed().as_secs_f64()
}

/// A per-core peak and the instruction sequence it was measured with.
#[derive(Clone, Copy)]
pub struct Peak {
    /// Giga multiply-adds per second on one core.
    pub gmacs: f64,
    pub how: &'static str,
}

/// Best of 9 runs of `f`, which performs `macs` multiply-adds (the best run is the one no other
/// process interrupted).
#[cfg(target_arch = "x86_64")]
fn best_rate(macs: usize, f: impl Fn()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..9 {
        let t0 = Instant::now();
        f();
        best = best.min(t0.elapsed().as_secs_f64());
    }
    macs as f64 / best / 1e9
}

/// Loop trips of the peak loops: long enough that timer and frequency ramp-up vanish.
#[cfg(target_arch = "x86_64")]
const PEAK_TRIPS: usize = 10_000_000;

/// The int8 multiply-add peak of one core with the widest int8 multiply the kernels use on this
/// CPU: `vpdpbusd zmm` with AVX-512 VNNI, else `vpmaddubsw` (u8×i8 pairs summed into int16) on
/// zmm with AVX-512BW or ymm with AVX2; the kernels' widening to int32 (`vpmaddwd`, once per
/// several k-steps) is not counted. `None` where no such x86 level is present.
pub fn int8_peak() -> Option<Peak> {
    #[cfg(target_arch = "x86_64")]
    {
        use x86::*;
        if Isa::Avx512Vnni.is_available() {
            let macs = PEAK_TRIPS * ACC * 64;
            // SAFETY: the CPU has AVX-512 VNNI (checked above).
            let gmacs = best_rate(macs, || unsafe { dpbusd_zmm(PEAK_TRIPS) });
            return Some(Peak {
                gmacs,
                how: "vpdpbusd zmm",
            });
        }
        if Isa::Avx512.is_available() {
            let macs = PEAK_TRIPS * ACC * 64;
            // SAFETY: the CPU has AVX-512BW (checked above).
            let gmacs = best_rate(macs, || unsafe { maddubs_zmm(PEAK_TRIPS) });
            return Some(Peak {
                gmacs,
                how: "vpmaddubsw zmm",
            });
        }
        if Isa::Avx2.is_available() {
            let macs = PEAK_TRIPS * ACC * 32;
            // SAFETY: the CPU has AVX2 (checked above).
            let gmacs = best_rate(macs, || unsafe { maddubs_ymm(PEAK_TRIPS) });
            return Some(Peak {
                gmacs,
                how: "vpmaddubsw ymm",
            });
        }
        None
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// The f32 FMA peak of one core (`vfmadd231ps` on zmm with AVX-512F, else ymm with FMA), the
/// ceiling the f32 baseline is judged against. `None` without FMA.
pub fn f32_peak() -> Option<Peak> {
    #[cfg(target_arch = "x86_64")]
    {
        use x86::*;
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked above).
            let gmacs = best_rate(PEAK_TRIPS * ACC * 16, || unsafe { fma_zmm(PEAK_TRIPS) });
            return Some(Peak {
                gmacs,
                how: "vfmadd231ps zmm",
            });
        }
        if std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX and FMA (checked above).
            let gmacs = best_rate(PEAK_TRIPS * ACC * 8, || unsafe { fma_ymm(PEAK_TRIPS) });
            return Some(Peak {
                gmacs,
                how: "vfmadd231ps ymm",
            });
        }
        None
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// Peak loops: `ACC` multiply-adds (of one vector each) per trip, independent of each other, so
/// the multiply pipes never wait on a latency; the single-instruction loops (`vpdpbusd`, FMA) run
/// twice as many accumulators for half the trips, as their loop-carried chain is the multiply.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::asm;
    use std::arch::x86_64::*;

    pub const ACC: usize = 6;

    /// The `vpmaddubsw` loops are written in assembly: `ACC` chains of the same intrinsic on the
    /// same inputs would be merged into one by the optimizer. The pair sums are added in int16
    /// (`vpaddw`), as the kernels do for several k-steps before they widen to int32.
    macro_rules! maddubs_loop {
        ($n:expr, $r:literal) => {
            // SAFETY: only the named vector registers and the counter are written.
            unsafe {
                asm!(
                    concat!("vpsubd ", $r, "9, ", $r, "9, ", $r, "9"),
                    concat!("vpsubd ", $r, "10, ", $r, "10, ", $r, "10"),
                    concat!("vpsubd ", $r, "11, ", $r, "11, ", $r, "11"),
                    concat!("vpsubd ", $r, "12, ", $r, "12, ", $r, "12"),
                    concat!("vpsubd ", $r, "13, ", $r, "13, ", $r, "13"),
                    concat!("vpsubd ", $r, "14, ", $r, "14, ", $r, "14"),
                    "2:",
                    concat!("vpmaddubsw ", $r, "3, ", $r, "0, ", $r, "1"),
                    concat!("vpmaddubsw ", $r, "4, ", $r, "0, ", $r, "1"),
                    concat!("vpmaddubsw ", $r, "5, ", $r, "0, ", $r, "1"),
                    concat!("vpmaddubsw ", $r, "6, ", $r, "0, ", $r, "1"),
                    concat!("vpmaddubsw ", $r, "7, ", $r, "0, ", $r, "1"),
                    concat!("vpmaddubsw ", $r, "8, ", $r, "0, ", $r, "1"),
                    concat!("vpaddw ", $r, "9, ", $r, "9, ", $r, "3"),
                    concat!("vpaddw ", $r, "10, ", $r, "10, ", $r, "4"),
                    concat!("vpaddw ", $r, "11, ", $r, "11, ", $r, "5"),
                    concat!("vpaddw ", $r, "12, ", $r, "12, ", $r, "6"),
                    concat!("vpaddw ", $r, "13, ", $r, "13, ", $r, "7"),
                    concat!("vpaddw ", $r, "14, ", $r, "14, ", $r, "8"),
                    "dec {n}",
                    "jnz 2b",
                    n = inout(reg) $n.max(1) => _,
                    in("ymm0") _mm256_set1_epi8(std::hint::black_box(3)),
                    in("ymm1") _mm256_set1_epi8(std::hint::black_box(-2)),
                    out("ymm3") _, out("ymm4") _, out("ymm5") _, out("ymm6") _,
                    out("ymm7") _, out("ymm8") _, out("ymm9") _, out("ymm10") _,
                    out("ymm11") _, out("ymm12") _, out("ymm13") _, out("ymm14") _,
                    options(nostack, nomem),
                )
            }
        };
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn dpbusd_zmm(n: usize) {
        let a = _mm512_set1_epi8(std::hint::black_box(3));
        let b = _mm512_set1_epi8(std::hint::black_box(-2));
        let mut acc = [_mm512_setzero_si512(); 2 * ACC];
        for _ in 0..n / 2 {
            for v in acc.iter_mut() {
                *v = _mm512_dpbusd_epi32(*v, a, b);
            }
        }
        std::hint::black_box(acc);
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn maddubs_zmm(n: usize) {
        maddubs_loop!(n, "zmm")
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn maddubs_ymm(n: usize) {
        maddubs_loop!(n, "ymm")
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn fma_zmm(n: usize) {
        let a = _mm512_set1_ps(std::hint::black_box(1.0));
        let b = _mm512_set1_ps(std::hint::black_box(1e-9));
        let mut acc = [_mm512_setzero_ps(); 2 * ACC];
        for _ in 0..n / 2 {
            for v in acc.iter_mut() {
                *v = _mm512_fmadd_ps(a, b, *v);
            }
        }
        std::hint::black_box(acc);
    }

    #[target_feature(enable = "avx,fma")]
    pub unsafe fn fma_ymm(n: usize) {
        let a = _mm256_set1_ps(std::hint::black_box(1.0));
        let b = _mm256_set1_ps(std::hint::black_box(1e-9));
        let mut acc = [_mm256_setzero_ps(); 2 * ACC];
        for _ in 0..n / 2 {
            for v in acc.iter_mut() {
                *v = _mm256_fmadd_ps(a, b, *v);
            }
        }
        std::hint::black_box(acc);
    }
}

//! Facts about the machine and the kernels tern picks on it.

use std::ffi::CStr;

use tern::format::{Format, Layout};
use tern::kernel::{self, Isa, Kernels, feature};

/// `tern_cpu_feature` bits and their names, in bit order.
const FEATURES: [(u64, &str); 12] = [
    (feature::AVX2, "avx2"),
    (feature::FMA, "fma"),
    (feature::AVX512F, "avx512f"),
    (feature::AVX512BW, "avx512bw"),
    (feature::AVX512VL, "avx512vl"),
    (feature::AVX512VNNI, "avx512vnni"),
    (feature::AVXVNNI, "avxvnni"),
    (feature::NEON, "neon"),
    (feature::DOTPROD, "dotprod"),
    (feature::I8MM, "i8mm"),
    (feature::AVX512VBMI, "avx512vbmi"),
    (feature::F16C, "f16c"),
];

/// Names of the features tern detected, or "none".
pub fn feature_names() -> String {
    let bits = kernel::cpu_features();
    let names: Vec<&str> = FEATURES
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, n)| *n)
        .collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(" ")
    }
}

/// The CPU model from /proc/cpuinfo (x86 `model name`, ARM `Model`/`CPU part`), or "unknown".
pub fn cpu_model() -> String {
    let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
        return format!("unknown ({})", std::env::consts::ARCH);
    };
    let field = |key: &str| {
        info.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key && !v.trim().is_empty()).then(|| v.trim().to_string())
        })
    };
    field("model name")
        .or_else(|| field("Model"))
        .or_else(|| field("Hardware"))
        .or_else(|| field("CPU part").map(|p| format!("CPU part {p}")))
        .unwrap_or_else(|| format!("unknown ({})", std::env::consts::ARCH))
}

/// Threads the OS lets this process run (what `n_threads = 0` uses).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Formats tern knows of, with whether this build implements them. A format counts as
/// implemented unless building its layout says `Unsupported`.
pub fn formats() -> Vec<(Format, bool)> {
    Format::all()
        .map(|f| {
            let implemented = match Layout::new(f as i32, 0, 0, 0, 0) {
                Ok(_) => true,
                Err(e) => e.kind != tern::error::ErrorKind::Unsupported,
            };
            (f, implemented)
        })
        .collect()
}

/// The kernel a `Matrix` of each implemented format runs with a table (what
/// `tern_context_kernel_name` reports).
pub fn format_kernels(k: &Kernels) -> Vec<(Format, &'static CStr)> {
    formats()
        .into_iter()
        .filter(|f| f.1)
        .map(|(f, _)| (f, tern::matrix::kernel_name(k, f)))
        .collect()
}

pub fn name(c: &CStr) -> String {
    c.to_string_lossy().into_owned()
}

/// `tern info`.
pub fn print_info() {
    println!("tern {}", env!("CARGO_PKG_VERSION"));
    println!("cpu:        {}", cpu_model());
    println!("cores:      {}", cores());
    println!("arch:       {}", std::env::consts::ARCH);
    println!(
        "features:   {} (bits 0x{:x})",
        feature_names(),
        kernel::cpu_features()
    );
    let available: Vec<Isa> = Isa::available().collect();
    let names: Vec<&str> = available.iter().map(|i| i.name()).collect();
    // The levels of this architecture (those with their own row) that this CPU lacks.
    let lacked: Vec<&str> = Isa::ALL
        .into_iter()
        .filter(|i| !i.is_available() && Kernels::for_isa(*i).isa == *i)
        .map(Isa::name)
        .collect();
    if lacked.is_empty() {
        println!("isa levels: {}", names.join(" "));
    } else {
        println!(
            "isa levels: {} (not on this CPU: {})",
            names.join(" "),
            lacked.join(" ")
        );
    }
    let fmts = formats();
    let list = |want: bool| {
        let v: Vec<&str> = fmts
            .iter()
            .filter(|f| f.1 == want)
            .map(|f| f.0.name())
            .collect();
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(" ")
        }
    };
    println!(
        "formats:    {} (not implemented: {})",
        list(true),
        list(false)
    );
    println!();
    println!("kernels per ISA level (Context max_isa = level):");
    let header: Vec<String> = format_kernels(Kernels::for_isa(Isa::Scalar))
        .iter()
        .map(|(f, _)| format!("{:<18}", f.name()))
        .collect();
    println!(
        "  {:<4} {:<12} {}",
        "id",
        "isa",
        header.join(" ").trim_end()
    );
    for isa in &available {
        let cols: Vec<String> = format_kernels(Kernels::for_isa(*isa))
            .iter()
            .map(|(_, k)| format!("{:<18}", name(k)))
            .collect();
        println!(
            "  {:<4} {:<12} {}",
            *isa as i32,
            isa.name(),
            cols.join(" ").trim_end()
        );
    }
    let best = Isa::best();
    let kernels: Vec<String> = format_kernels(Kernels::for_isa(best))
        .iter()
        .map(|(f, k)| format!("{} -> {}", f.name(), name(k)))
        .collect();
    println!();
    println!(
        "default (max_isa = 0): {} ({})",
        best.name(),
        kernels.join(", ")
    );
}

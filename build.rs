//! Sets the shared library's soname to `libtern.so.0.<minor>` (cargo-c's rule for 0.x versions),
//! so that every minor release may change the ABI and installs side by side.
//!
//! With feature `cuda`: puts the GPU code the library embeds into OUT_DIR (`cuda_ptx()`).

fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" || target_os == "android" {
        let major = env!("CARGO_PKG_VERSION_MAJOR");
        let minor = env!("CARGO_PKG_VERSION_MINOR");
        let soname = if major == "0" {
            format!("libtern.so.0.{minor}")
        } else {
            format!("libtern.so.{major}")
        };
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");
    }
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        cuda_ptx();
    }
    println!("cargo:rerun-if-changed=build.rs");
}

/// The PTX (compute_80) and cubins (sm_80, sm_90) of cuda/tern_kernels.cu, into OUT_DIR.
/// Built by `cuda/build.sh` with the nvcc named by TERN_NVCC or found on PATH; with neither,
/// the committed files in cuda/ptx/ are used, so a build needs no CUDA toolkit. If TERN_NVCC
/// is set, a failed compile is an error; an nvcc merely found on PATH that fails only warns and
/// falls back to the committed files.
fn cuda_ptx() {
    use std::path::PathBuf;
    use std::process::Command;
    const FILES: [&str; 3] = [
        "tern_kernels.ptx",
        "tern_kernels.sm_80.cubin",
        "tern_kernels.sm_90.cubin",
    ];
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    for f in [
        "cuda/tern_kernels.cu",
        "cuda/tern_cuda_emu.h",
        "cuda/build.sh",
    ] {
        println!("cargo:rerun-if-changed={f}");
    }
    for f in FILES {
        println!("cargo:rerun-if-changed=cuda/ptx/{f}");
    }
    println!("cargo:rerun-if-env-changed=TERN_NVCC");
    println!("cargo:rerun-if-env-changed=PATH");
    let explicit = std::env::var_os("TERN_NVCC");
    let nvcc = explicit.clone().map(PathBuf::from).or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("nvcc"))
                .find(|p| p.is_file())
        })
    });
    if let Some(nvcc) = nvcc {
        let status = Command::new("bash")
            .arg(root.join("cuda/build.sh"))
            .arg(&out)
            .env("NVCC", &nvcc)
            .status();
        match status {
            Ok(s) if s.success() => return,
            other if explicit.is_some() => {
                panic!(
                    "cuda/build.sh with TERN_NVCC={} failed: {other:?}",
                    nvcc.display()
                )
            }
            other => println!(
                "cargo:warning=cuda/build.sh with {} failed ({other:?}); using the committed PTX in cuda/ptx/",
                nvcc.display()
            ),
        }
    }
    for f in FILES {
        std::fs::copy(root.join("cuda/ptx").join(f), out.join(f))
            .unwrap_or_else(|e| panic!("copying cuda/ptx/{f} into OUT_DIR: {e}"));
    }
}

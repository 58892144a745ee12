//! ggml's TQ2_0/TQ1_0 CPU kernels through the real libggml, loaded with dlopen (no link-time
//! dependency), for `bench --peers`.

use std::ffi::{CStr, CString, c_void};

use tern::context::Context;

type FromFloat = unsafe extern "C" fn(*const f32, *mut c_void, i64);
type VecDot =
    unsafe extern "C" fn(i32, *mut f32, usize, *const c_void, usize, *const c_void, usize, i32);

#[repr(C)]
struct TraitsCpu {
    from_float: Option<FromFloat>,
    vec_dot: Option<VecDot>,
    vec_dot_type: i32,
    nrows: i64,
}

/// The functions of libggml-base/libggml-cpu that the peer rows use.
pub struct Ggml {
    pub path: String,
    traits: unsafe extern "C" fn(i32) -> *const TraitsCpu,
    row_size: unsafe extern "C" fn(i32, i64) -> usize,
    quantize_chunk:
        unsafe extern "C" fn(i32, *const f32, *mut c_void, i64, i64, i64, *const f32) -> usize,
}

/// A weight matrix in ggml's blocks.
#[derive(Clone)]
pub struct GgmlMatrix {
    pub name: &'static str,
    ty: i32,
    pub data: Vec<u8>,
    row_bytes: usize,
    rows: usize,
    cols: usize,
}

impl Ggml {
    /// Loads libggml-base and libggml-cpu from `TERN_GGML_LIB` (a directory), the Python
    /// package `libggml` (`pip install libggml-python`), or the default library path.
    pub fn load() -> Result<Self, String> {
        let mut dirs = Vec::new();
        if let Ok(d) = std::env::var("TERN_GGML_LIB") {
            dirs.push(d);
        }
        if let Ok(out) = std::process::Command::new("python3")
            .args([
                "-c",
                "import libggml, os; print(os.path.dirname(libggml.__file__))",
            ])
            .output()
            && out.status.success()
        {
            let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
            dirs.push(format!("{p}/lib64"));
            dirs.push(format!("{p}/lib"));
        }
        dirs.push(String::new());
        let mut last = String::from("no candidate directory");
        for d in dirs {
            let lib = |n: &str| {
                if d.is_empty() {
                    n.to_string()
                } else {
                    format!("{d}/{n}")
                }
            };
            match (
                dlopen(&lib("libggml-base.so")),
                dlopen(&lib("libggml-cpu.so")),
            ) {
                (Ok(base), Ok(cpu)) => {
                    let g = (|| -> Result<Self, String> {
                        // SAFETY: the symbols have these C signatures (ggml.h, ggml-cpu.h).
                        unsafe {
                            let init: unsafe extern "C" fn() =
                                std::mem::transmute(dlsym(cpu, "ggml_cpu_init")?);
                            init();
                            Ok(Self {
                                path: if d.is_empty() {
                                    "default library path".into()
                                } else {
                                    d.clone()
                                },
                                traits: std::mem::transmute::<
                                    *mut c_void,
                                    unsafe extern "C" fn(i32) -> *const TraitsCpu,
                                >(dlsym(
                                    cpu,
                                    "ggml_get_type_traits_cpu",
                                )?),
                                row_size: std::mem::transmute::<
                                    *mut c_void,
                                    unsafe extern "C" fn(i32, i64) -> usize,
                                >(dlsym(
                                    base,
                                    "ggml_row_size",
                                )?),
                                quantize_chunk: std::mem::transmute::<
                                    *mut c_void,
                                    unsafe extern "C" fn(
                                        i32,
                                        *const f32,
                                        *mut c_void,
                                        i64,
                                        i64,
                                        i64,
                                        *const f32,
                                    )
                                        -> usize,
                                >(dlsym(
                                    base,
                                    "ggml_quantize_chunk",
                                )?),
                            })
                        }
                    })();
                    match g {
                        Ok(g) => return Ok(g),
                        Err(e) => last = e,
                    }
                }
                (Err(e), _) | (_, Err(e)) => last = e,
            }
        }
        Err(last)
    }

    pub fn matrix(
        &self,
        name: &'static str,
        ty: i32,
        w: &[f32],
        rows: usize,
        cols: usize,
    ) -> GgmlMatrix {
        // SAFETY: ggml_row_size/ggml_quantize_chunk on a buffer of rows · row_size bytes.
        let row_bytes = unsafe { (self.row_size)(ty, cols as i64) };
        let mut data = vec![0u8; rows * row_bytes];
        unsafe {
            (self.quantize_chunk)(
                ty,
                w.as_ptr(),
                data.as_mut_ptr().cast(),
                0,
                rows as i64,
                cols as i64,
                std::ptr::null(),
            );
        }
        GgmlMatrix {
            name,
            ty,
            data,
            row_bytes,
            rows,
            cols,
        }
    }

    /// ggml's mul_mat for a TQ type on the CPU: activations → the type's `vec_dot_type` (Q8_K)
    /// with its `from_float`, then one `vec_dot` per (row, token), rows split over the threads
    /// in blocks of 16 rows × 16 tokens as ggml's mul_mat does.
    pub fn mul_mat(
        &self,
        ctx: &Context,
        m: &GgmlMatrix,
        x: &[f32],
        tokens: usize,
        y: &mut [f32],
        q8: &mut Vec<u8>,
    ) {
        // SAFETY: the traits are static; from_float/vec_dot get buffers of the sizes ggml
        // computes for `cols` elements.
        unsafe {
            let tr = &*(self.traits)(m.ty);
            let vt = tr.vec_dot_type;
            let q_row = (self.row_size)(vt, m.cols as i64);
            q8.resize(tokens * q_row, 0);
            let from = (*(self.traits)(vt)).from_float.expect("Q8_K from_float");
            for t in 0..tokens {
                from(
                    x[t * m.cols..].as_ptr(),
                    q8[t * q_row..].as_mut_ptr().cast(),
                    m.cols as i64,
                );
            }
            let dot = tr.vec_dot.expect("vec_dot");
            let (rows, cols, rb) = (m.rows, m.cols, m.row_bytes);
            let blocks = rows.div_ceil(16);
            let out = y.as_mut_ptr() as usize;
            let (wp, qp) = (m.data.as_ptr() as usize, q8.as_ptr() as usize);
            ctx.threads.for_each(blocks, |b| {
                let r0 = b * 16;
                for t0 in (0..tokens).step_by(16) {
                    for r in r0..(r0 + 16).min(rows) {
                        for t in t0..(t0 + 16).min(tokens) {
                            dot(
                                cols as i32,
                                (out as *mut f32).add(t * rows + r),
                                0,
                                (wp as *const u8).add(r * rb).cast(),
                                0,
                                (qp as *const u8).add(t * q_row).cast(),
                                0,
                                1,
                            );
                        }
                    }
                }
            });
        }
    }
}

fn dlopen(path: &str) -> Result<*mut c_void, String> {
    let c = CString::new(path).map_err(|e| e.to_string())?;
    // SAFETY: a NUL-terminated path; RTLD_NOW | RTLD_GLOBAL so libggml-cpu finds libggml-base.
    let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if h.is_null() {
        // SAFETY: dlerror returns a static message or NULL.
        let e = unsafe { libc::dlerror() };
        let msg = if e.is_null() {
            format!("dlopen {path} failed")
        } else {
            unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
        };
        return Err(msg);
    }
    Ok(h)
}

fn dlsym(h: *mut c_void, name: &str) -> Result<*mut c_void, String> {
    let c = CString::new(name).map_err(|e| e.to_string())?;
    // SAFETY: a live handle from dlopen and a NUL-terminated name.
    let p = unsafe { libc::dlsym(h, c.as_ptr()) };
    if p.is_null() {
        Err(format!("symbol {name} not found in libggml"))
    } else {
        Ok(p)
    }
}

//! A context: the kernel table chosen once from the CPU (capped by `max_isa`) and the threads
//! that run it. Immutable after creation, so it is shared freely across threads.

use std::sync::OnceLock;

use rayon::prelude::*;

use crate::error::{Error, ErrorKind, Result};
use crate::kernel::{Isa, Kernels};

/// Where parallel work runs.
pub enum Threads {
    /// Everything on the caller's thread (`n_threads = 1`).
    Caller,
    /// A pool owned by the context.
    Pool(rayon::ThreadPool),
}

impl Threads {
    pub fn count(&self) -> usize {
        match self {
            Self::Caller => 1,
            Self::Pool(pool) => pool.current_num_threads(),
        }
    }

    /// Runs `f(i)` for every `i` in `0..n`, spread over the threads.
    pub fn for_each(&self, n: usize, f: impl Fn(usize) + Sync + Send) {
        match self {
            Self::Pool(pool) if n > 1 => pool.install(|| (0..n).into_par_iter().for_each(f)),
            _ => (0..n).for_each(f),
        }
    }
}

pub struct Context {
    pub kernels: &'static Kernels,
    pub threads: Threads,
}

/// Most threads a context may ask for.
pub const MAX_THREADS: i32 = 1024;

impl Context {
    /// `max_isa`: `tern_isa` value, 0 = best. `n_threads`: 0 = all cores, 1 = caller's thread.
    pub fn new(max_isa: i32, n_threads: i32) -> Result<Self> {
        let isa = Isa::from_request(max_isa)?;
        if !(0..=MAX_THREADS).contains(&n_threads) {
            return Err(Error::invalid(format!(
                "n_threads = {n_threads} is out of range (allowed: 0 = all cores, 1..={MAX_THREADS})"
            )));
        }
        let n = match n_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        };
        let threads = if n == 1 {
            Threads::Caller
        } else {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .thread_name(|i| format!("tern-{i}"))
                .build()
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Internal,
                        format!("cannot start {n} threads: {e}"),
                    )
                })?;
            Threads::Pool(pool)
        };
        Ok(Self {
            kernels: Kernels::for_isa(isa),
            threads,
        })
    }

    /// The process-wide context used when a C caller passes NULL: best ISA, all cores.
    pub fn global() -> Result<&'static Context> {
        static GLOBAL: OnceLock<std::result::Result<Context, Error>> = OnceLock::new();
        GLOBAL
            .get_or_init(|| Context::new(0, 0))
            .as_ref()
            .map_err(Clone::clone)
    }
}

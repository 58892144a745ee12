//! A [`Context`]: its row of the ISA table (every kernel and the activation quantizer of one
//! [`Isa`] level), chosen once from `max_isa` and the CPU, and the threads that run it.
//! Immutable after creation, so it is shared freely across threads.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::kernel::{Isa, Kernels};

/// Where parallel work runs.
#[doc(hidden)]
pub enum Threads {
    /// Everything on the caller's thread (`n_threads = 1`).
    Caller,
    /// A pool owned by the context: `n − 1` workers plus the calling thread.
    Pool(Pool),
}

impl Threads {
    /// Threads that take part in a call, the caller included.
    pub fn count(&self) -> usize {
        match self {
            Self::Caller => 1,
            Self::Pool(pool) => pool.n,
        }
    }

    /// Runs `f(i)` for every `i` in `0..n`, spread over the threads (the caller takes part).
    /// Tasks are claimed in order, so consecutive tasks tend to run on one thread.
    pub fn for_each(&self, n: usize, f: impl Fn(usize) + Sync + Send) {
        self.for_each_slot(n, |_, i| f(i));
    }

    /// Like `for_each`, and tells each task the slot it runs in, `f(slot, i)`: a slot is below
    /// `count()`, and tasks running at the same time have different slots, so tasks can share
    /// per-slot buffers that the caller allocated beforehand.
    pub fn for_each_slot(&self, n: usize, f: impl Fn(usize, usize) + Sync + Send) {
        match self {
            Self::Pool(pool) if n > 1 => pool.run(n, &f),
            _ => (0..n).for_each(|i| f(0, i)),
        }
    }
}

/// A small fork-join pool for the short, frequent calls of inference: a GEMV takes tens of
/// microseconds, about what waking a sleeping thread costs, so idle workers may spin on the job
/// epoch for a while (`spin`) after their last task before they sleep (and are then woken by a
/// condvar). One job at a time: a concurrent or nested `run` on a busy pool runs on its caller
/// alone.
#[doc(hidden)]
pub struct Pool {
    n: usize,
    shared: Arc<Shared>,
    busy: Mutex<()>,
    workers: Vec<JoinHandle<()>>,
}

/// Default of `tern_context_options.spin_us`: how long an idle worker spins before it sleeps.
/// Long enough to bridge the gaps between the GEMVs of one layer (a host's norms, activations
/// and small ops take microseconds), short enough that workers are asleep while a host that
/// brings its own threads runs its attention, sampling or anything else between tokens: they
/// then cost it at most this much CPU per worker after each call.
pub const DEFAULT_SPIN_US: u32 = 100;

/// Most `spin_us` a context accepts (one second: longer spinning only burns CPU).
pub const MAX_SPIN_US: u32 = 1_000_000;

struct Shared {
    /// The job being run, or null.
    job: AtomicPtr<Job<'static>>,
    /// Bumped for every job.
    epoch: AtomicU64,
    /// Workers between "saw a new epoch" and "done with its job" (the caller waits for 0).
    entered: AtomicUsize,
    sleepers: AtomicUsize,
    stop: AtomicBool,
    panicked: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
    /// How long an idle worker spins before it sleeps.
    spin: Duration,
}

struct Job<'a> {
    f: &'a (dyn Fn(usize, usize) + Sync),
    n: usize,
    next: AtomicUsize,
}

impl Job<'_> {
    /// Claims and runs tasks in slot `slot` (the caller 0, worker `i` slot `i`).
    fn work(&self, slot: usize) {
        loop {
            let i = self.next.fetch_add(1, SeqCst);
            if i >= self.n {
                return;
            }
            (self.f)(slot, i);
        }
    }
}

impl Pool {
    /// `n − 1` workers; the error names the thread that could not start and why.
    fn new(n: usize, spin: Duration) -> Result<Self> {
        let shared = Arc::new(Shared {
            job: AtomicPtr::new(std::ptr::null_mut()),
            epoch: AtomicU64::new(0),
            entered: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            spin,
        });
        let mut pool = Self {
            n,
            shared: shared.clone(),
            busy: Mutex::new(()),
            workers: Vec::new(),
        };
        crate::error::try_reserve(&mut pool.workers, n - 1, "the thread pool")?;
        for i in 1..n {
            let shared = shared.clone();
            // Dropping `pool` on an error stops and joins the workers already started.
            let handle = std::thread::Builder::new()
                .name(format!("tern-{i}"))
                .spawn(move || worker(&shared, i))
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Internal,
                        format!(
                            "cannot start worker thread {i} of {} (for a {n}-thread context): {e} \
                             (the process may have reached its thread limit, RLIMIT_NPROC, or be out \
                             of memory for the thread's stack)",
                            n - 1
                        ),
                    )
                })?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    fn run(&self, n: usize, f: &(dyn Fn(usize, usize) + Sync)) {
        let Ok(_busy) = self.busy.try_lock() else {
            // Another job is running (a concurrent or nested call): run this one here.
            return (0..n).for_each(|i| f(0, i));
        };
        let job = Job {
            f,
            n,
            next: AtomicUsize::new(0),
        };
        let sh = &*self.shared;
        // SAFETY (lifetime erasure): the pointer is retracted and every worker that may have
        // loaded it has left (`Retract::drop`) before `job` goes out of scope.
        let ptr = (&job as *const Job).cast::<Job<'static>>().cast_mut();
        sh.job.store(ptr, SeqCst);
        sh.epoch.fetch_add(1, SeqCst);
        if sh.sleepers.load(SeqCst) > 0 {
            let _g = sh.lock.lock().unwrap_or_else(|e| e.into_inner());
            sh.wake.notify_all();
        }
        struct Retract<'a>(&'a Shared);
        impl Drop for Retract<'_> {
            fn drop(&mut self) {
                self.0.job.store(std::ptr::null_mut(), SeqCst);
                // A worker that entered is running or about to return; it may share this
                // core (the scheduler often wakes a thread on its waker's CPU), so yield
                // after a short spin rather than starve it.
                let mut spins = 0u32;
                while self.0.entered.load(SeqCst) != 0 {
                    spins += 1;
                    if spins < 1000 {
                        std::hint::spin_loop();
                    } else {
                        std::thread::yield_now();
                    }
                }
            }
        }
        let retract = Retract(sh);
        job.work(0);
        drop(retract);
        if sh.panicked.swap(false, SeqCst) {
            resume_unwind(Box::new("a tern worker thread panicked"));
        }
    }
}

fn worker(sh: &Shared, slot: usize) {
    let mut seen = sh.epoch.load(SeqCst);
    let mut idle = Instant::now();
    let mut spins = 0u32;
    loop {
        let e = sh.epoch.load(SeqCst);
        if e != seen {
            seen = e;
            // Enter before loading the job: the caller retracts it, then waits for `entered`.
            sh.entered.fetch_add(1, SeqCst);
            let job = sh.job.load(SeqCst);
            if !job.is_null() {
                // SAFETY: non-null, so the caller has not retracted it and waits for us.
                let job = unsafe { &*job };
                if catch_unwind(AssertUnwindSafe(|| job.work(slot))).is_err() {
                    sh.panicked.store(true, SeqCst);
                }
            }
            sh.entered.fetch_sub(1, SeqCst);
            idle = Instant::now();
            continue;
        }
        if sh.stop.load(SeqCst) {
            return;
        }
        // The clock is read once per 256 spins (it costs more than a spin); with no spin time
        // the worker goes to sleep at once.
        spins = spins.wrapping_add(1);
        if !sh.spin.is_zero() && (!spins.is_multiple_of(256) || idle.elapsed() < sh.spin) {
            std::hint::spin_loop();
            continue;
        }
        let mut g = sh.lock.lock().unwrap_or_else(|e| e.into_inner());
        sh.sleepers.fetch_add(1, SeqCst);
        while sh.epoch.load(SeqCst) == seen && !sh.stop.load(SeqCst) {
            g = sh.wake.wait(g).unwrap_or_else(|e| e.into_inner());
        }
        sh.sleepers.fetch_sub(1, SeqCst);
        drop(g);
        idle = Instant::now();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, SeqCst);
        {
            let _g = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

/// The ISA level and the threads that GEMMs run on. Make one per process (or per thread
/// budget) and pass it to [`Matrix::from_packed`](crate::Matrix::from_packed) and every
/// [`Matrix::gemm`](crate::Matrix::gemm) of the matrices made with it. `Sync`: share it
/// across threads.
///
/// ```
/// use tern::{Context, Isa};
///
/// let ctx = Context::new(0, 1)?; // the best level of this CPU, the caller's thread only
/// assert_eq!(ctx.isa(), Isa::best());
/// assert_eq!(ctx.n_threads(), 1);
/// // A level can be capped (the scalar oracle exists everywhere); one the CPU lacks is an error.
/// let scalar = Context::with_spin(Isa::Scalar as i32, 2, 0)?;
/// assert_eq!((scalar.isa(), scalar.n_threads()), (Isa::Scalar, 2));
/// assert!(Context::new(0, 5000).is_err()); // above MAX_THREADS
/// # Ok::<(), tern::Error>(())
/// ```
pub struct Context {
    /// The level's row: what every GEMM and activation quantization on this context runs.
    #[doc(hidden)]
    pub kernels: &'static Kernels,
    #[doc(hidden)]
    pub threads: Threads,
}

/// Most threads a context may ask for.
pub const MAX_THREADS: i32 = 1024;

impl Context {
    /// `max_isa`: `tern_isa` value, 0 = best. `n_threads`: 0 = all cores, 1 = caller's thread.
    /// Idle workers spin `DEFAULT_SPIN_US`.
    pub fn new(max_isa: i32, n_threads: i32) -> Result<Self> {
        Self::with_spin(max_isa, n_threads, DEFAULT_SPIN_US)
    }

    /// Like `new`, with idle workers spinning `spin_us` microseconds (≤ `MAX_SPIN_US`) before
    /// they sleep; 0 = sleep at once.
    pub fn with_spin(max_isa: i32, n_threads: i32, spin_us: u32) -> Result<Self> {
        let isa = Isa::from_request(max_isa)?;
        if !(0..=MAX_THREADS).contains(&n_threads) {
            return Err(Error::invalid(format!(
                "n_threads = {n_threads} is out of range (allowed: 0 = all cores, 1..={MAX_THREADS})"
            )));
        }
        if spin_us > MAX_SPIN_US {
            return Err(Error::invalid(format!(
                "spin_us = {spin_us} is out of range (allowed: 0..={MAX_SPIN_US} microseconds)"
            )));
        }
        let n = match n_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n as usize,
        };
        let threads = if n == 1 {
            Threads::Caller
        } else {
            let spin = Duration::from_micros(spin_us.into());
            Threads::Pool(Pool::new(n, spin)?)
        };
        Ok(Self {
            kernels: Kernels::for_isa(isa),
            threads,
        })
    }

    /// The ISA level its kernels run.
    pub fn isa(&self) -> Isa {
        self.kernels.isa
    }

    /// Threads that run a call, the caller included.
    pub fn n_threads(&self) -> usize {
        self.threads.count()
    }

    /// The process-wide context used when a C caller passes NULL: best ISA, all cores, default
    /// spin. Made by the first call that needs it; if it cannot be made (e.g. threads cannot
    /// start), that call fails with the reason and a later call tries again.
    pub fn global() -> Result<&'static Context> {
        static GLOBAL: OnceLock<Context> = OnceLock::new();
        /// Serializes the attempts, so two failing callers do not both start threads.
        static START: Mutex<()> = Mutex::new(());
        if let Some(ctx) = GLOBAL.get() {
            return Ok(ctx);
        }
        let _start = START.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ctx) = GLOBAL.get() {
            return Ok(ctx);
        }
        let ctx = Self::new(0, 0).map_err(|e| {
            Error::new(
                e.kind,
                format!(
                    "cannot start the default context (ctx = NULL): {}",
                    e.message
                ),
            )
        })?;
        Ok(GLOBAL.get_or_init(|| ctx))
    }
}

//! Runs a test's body in a child process (the test binary re-executed with `--exact`), so that
//! an abort (the default reaction to a refused allocation) fails that test instead of killing
//! the harness, and process-wide state (an address-space limit, the default context, CPU
//! accounting) concerns that body alone.
#![allow(dead_code)]

use std::process::Command;

const ENV: &str = "TERN_TEST_CHILD";
const DONE: &str = "tern-test-child: done";

/// In the parent: runs test `name` in a child process, asserts it finished, and returns its
/// standard output. In that child (`TERN_TEST_CHILD` = `name`): runs `body` and returns `None`.
pub fn run(name: &str, body: impl FnOnce()) -> Option<String> {
    let mut body = Some(body);
    run_cases(name, &[""], |_| (body.take().expect("one case"))()).map(|mut out| out.remove(0))
}

/// Like `run` for several cases, one child process each, one after the other: `body(case)` runs
/// in the child of `case`; the parent gets each child's standard output.
pub fn run_cases(name: &str, cases: &[&str], mut body: impl FnMut(&str)) -> Option<Vec<String>> {
    if let Ok(v) = std::env::var(ENV)
        && let Some(case) = v.strip_prefix(name).and_then(|c| c.strip_prefix('/'))
    {
        body(case);
        println!("{DONE}");
        return None;
    }
    let exe = std::env::current_exe().expect("test binary path");
    // Under cargo's runner for this target (an emulator such as `qemu-aarch64 -L … -cpu max`,
    // set in the environment of `cargo test`), the child runs under it too.
    let runner_var = format!(
        "CARGO_TARGET_{}_UNKNOWN_LINUX_GNU_RUNNER",
        std::env::consts::ARCH.to_uppercase()
    );
    let runner = std::env::var(runner_var).unwrap_or_default();
    let mut command = runner
        .split_whitespace()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    command.push(exe.to_string_lossy().into_owned());
    let outputs = cases
        .iter()
        .map(|case| {
            // glibc's allocator in the child: one arena, and a fixed mmap threshold, so every
            // big allocation maps fresh memory and `AddressSpaceLimit` binds it (a thread's own
            // arena would grow inside address space it reserved earlier; a threshold raised by
            // earlier frees would serve big blocks from the heap's free space).
            let out = Command::new(&command[0])
                .args(&command[1..])
                .args([name, "--exact", "--nocapture", "--test-threads=1"])
                .env(ENV, format!("{name}/{case}"))
                .env("MALLOC_ARENA_MAX", "1")
                .env("MALLOC_MMAP_THRESHOLD_", "65536")
                .output()
                .expect("cannot start the child process");
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success() && stdout.contains(DONE),
                "child process of {name} ({case}) failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            // A case the child skipped says why; the parent shows it.
            for line in stdout.lines() {
                if let Some(at) = line.find("skipped:") {
                    println!("{name} {case}: {}", &line[at..]);
                }
            }
            stdout
        })
        .collect();
    Some(outputs)
}

/// An address-space limit (RLIMIT_AS) of what the process maps now plus `headroom` bytes, lifted
/// again when dropped. Meant for the child processes of `run`, whose allocator maps every big
/// block afresh.
pub struct AddressSpaceLimit {
    old: libc::rlimit,
}

impl AddressSpaceLimit {
    /// The limit, or `None` (with the reason printed) where it does not bind: qemu-user accepts
    /// the setting but does not apply it to the emulated process.
    pub fn new(headroom: usize) -> Option<Self> {
        let limit = Self::set(headroom);
        // SAFETY: maps and unmaps a fresh private region, touching nothing else.
        let bound = unsafe {
            let size = 2 * headroom + (16 << 20);
            let p = libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if p != libc::MAP_FAILED {
                libc::munmap(p, size);
            }
            p == libc::MAP_FAILED
        };
        if !bound {
            drop(limit);
            println!("skipped: RLIMIT_AS does not bind here (an emulator?)");
            return None;
        }
        Some(limit)
    }

    fn set(headroom: usize) -> Self {
        let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
        let pages: usize = statm.split_whitespace().next().unwrap().parse().unwrap();
        // SAFETY: plain libc queries and settings of this process's own limit.
        unsafe {
            let page = libc::sysconf(libc::_SC_PAGESIZE) as usize;
            let mut old = std::mem::zeroed::<libc::rlimit>();
            assert_eq!(libc::getrlimit(libc::RLIMIT_AS, &mut old), 0);
            let new = libc::rlimit {
                rlim_cur: (pages * page + headroom) as libc::rlim_t,
                rlim_max: old.rlim_max,
            };
            assert_eq!(libc::setrlimit(libc::RLIMIT_AS, &new), 0);
            Self { old }
        }
    }
}

impl Drop for AddressSpaceLimit {
    fn drop(&mut self) {
        // SAFETY: restores the limit read in `new` (raising the soft limit up to the unchanged
        // hard limit is allowed).
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &self.old) }, 0);
    }
}

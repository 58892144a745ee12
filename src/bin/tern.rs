//! The `tern` command line: `tern info` (CPU, ISA levels, kernels) and `tern bench` (GEMM timings
//! for every kernel this CPU has, checked against an f64 reference). `tern --help` for usage.

#[path = "tern/args.rs"]
mod args;
#[path = "tern/bench.rs"]
mod bench;
#[path = "tern/convert.rs"]
mod convert;
#[path = "tern/cuda_bench.rs"]
mod cuda_bench;
#[path = "tern/from_safetensors.rs"]
mod from_safetensors;
#[path = "tern/inspect.rs"]
mod inspect;
#[path = "tern/json.rs"]
mod json;
#[path = "tern/machine.rs"]
mod machine;
#[path = "tern/safetensors.rs"]
mod safetensors;

use std::process::ExitCode;

use args::Command;

fn main() -> ExitCode {
    let argv: Vec<String> = match std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect()
    {
        Ok(v) => v,
        Err(bad) => return fail(&format!("argument {bad:?} is not valid UTF-8"), 2),
    };
    let command = match args::parse(&argv) {
        Ok(c) => c,
        Err(e) => return fail(&format!("{e}\n(run 'tern --help' for usage)"), 2),
    };
    match command {
        Command::Help(text) => println!("{text}"),
        Command::Version => println!("tern {}", env!("CARGO_PKG_VERSION")),
        Command::Info => machine::print_info(),
        Command::Convert(a) => {
            if let Err(e) = convert::run(&a) {
                return fail(&e, 1);
            }
        }
        Command::Inspect(a) => {
            if let Err(e) = inspect::run(&a) {
                return fail(&e, 1);
            }
        }
        Command::Bench(b) if b.cuda => {
            if let Err(e) = cuda_bench::run(&b) {
                return fail(&e, 1);
            }
        }
        Command::Bench(b) => {
            if let Err(e) = bench::run(&b) {
                return fail(&e, 1);
            }
        }
    }
    ExitCode::SUCCESS
}

fn fail(message: &str, code: u8) -> ExitCode {
    eprintln!("tern: error: {message}");
    ExitCode::from(code)
}

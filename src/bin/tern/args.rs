//! The command line, parsed by hand: `tern [COMMAND] [OPTIONS]`. Options take their value as the
//! next argument or after `=` (`--tokens 1,128` or `--tokens=1,128`).

use tern::context::MAX_THREADS;
use tern::format::Format;
use tern::kernel::Isa;

pub const USAGE: &str = "\
usage: tern [COMMAND] [OPTIONS]

commands:
  info     version, CPU features, ISA levels and the kernel each one uses
  bench    time the GEMM kernels on BitNet-b1.58-2B-4T layer shapes (the default command)
  convert  safetensors model -> GGUF with ternary linear layers, or a GGUF -> the same GGUF
           with its weight tensors in another format (I2_S, TL1, TL2, TQ1_0, TQ2_0, Q2_0, Q1_0)
  inspect  list the key-value pairs and tensors of a GGUF file, with ternary sparsity
  help     this text

run `tern COMMAND --help` for the options of a command";

pub const INFO_USAGE: &str = "\
usage: tern info

Prints the tern version, the CPU model, core count and features, the ISA levels this CPU can
run, and for each level the kernel used per implemented format, plus the default choice.";

pub const BENCH_USAGE: &str = "\
usage: tern bench [OPTIONS]

Times Matrix::gemm (default absmean weights, TERN_COMPAT_DEFAULT activations) for every format
and every kernel this CPU has, and checks each result against an f64 reference.

options:
  --shapes LIST    weight shapes out x in, e.g. 2560x2560,640x2560 (in must be a multiple of 128)
                   [default: 2560x2560,640x2560,6912x2560,2560x6912 (BitNet-b1.58-2B-4T layers)]
  --formats LIST   i2_s, tl1, tl2, tq1_0, tq2_0, q2_0, q1_0 (tq needs in % 256 == 0,
                   q2_0 in % 64, q1_0 in % 128)                         [default: all seven]
  --tokens LIST    token counts (activation columns)                              [default: 1,128]
  --threads LIST   context threads; 0 = all cores (duplicates are dropped)         [default: 1,0]
  --isa LIST       ISA levels to run (scalar, avx2, avx512, avxvnni, avx512vnni, avx512vbmi,
                   neon, dotprod, i8mm, or all)                      [default: all this CPU has]
  --quick          fewer repetitions (CI smoke test); not for numbers you quote
  --ggml-ref       per-block formats (TQ, Q2_0, Q1_0) take ggml's reference quantizers, whose
                   per-block scales differ (as in ggml's model files) instead of absmean's one
  --vs FORMAT      time the formats of each shape interleaved, round by round (15 rounds, each
                   starting with the next format; every round's calls of a format last about
                   0.02 s), and report each point's median per-round time ratio to FORMAT (one
                   of --formats): ratios from calls made side by side, as the machine drifts
  --peers          every format (I2_S, TQ2_0, TQ1_0, TL1, TL2) with the best kernels against
                   the peers in the same run: ggml's TQ2_0/TQ1_0 through the real libggml
                   (pip install libggml-python; skipped with a note when missing), a blocked
                   f32 GEMM, the DRAM read bandwidth and this CPU's int8 and f32 FMA peaks, all
                   measured in the run; 1-token points stream the weights from DRAM. Prints the
                   issue's goals as MET/NOT MET.
                   Uses --shapes, --tokens, --threads (default 1,0 = 1 and all cores), --quick
  --cuda           time the CUDA kernels on GPU 0 instead (bf16 in/out, against a bf16 cuBLAS
                   GEMM); needs a build with `--features cuda`, a driver and a GPU (else exits 1).
                   Uses --shapes, --tokens, --quick, --json
  --json           print the results as a JSON array on stdout instead of the table
                   (machine facts and progress still go to stderr)
  -h, --help       this text

Each point: one warm-up call, then repeated calls (>= 0.3 s and >= 3 reps; --quick: >= 0.03 s
and >= 2 reps), reporting the median. The scalar kernel at >= 32 tokens runs once, without
warm-up (it is the slow reference kernel).";

/// Largest accepted token count and dimension, to keep a typo from allocating the machine away.
const MAX_TOKENS: usize = 1 << 16;
const MAX_DIM: usize = 1 << 20;

pub enum Command {
    Help(&'static str),
    Version,
    Info,
    Bench(BenchArgs),
    Convert(super::convert::Args),
    Inspect(super::inspect::Args),
}

#[derive(Debug)]
pub struct BenchArgs {
    /// `(rows, cols)` = (out, in).
    pub shapes: Vec<(usize, usize)>,
    pub tokens: Vec<usize>,
    pub formats: Vec<Format>,
    /// As given to `Context::new` (0 = all cores).
    pub threads: Vec<i32>,
    /// `None` = every available level.
    pub isas: Option<Vec<Isa>>,
    pub quick: bool,
    /// `--ggml-ref`: per-block formats take ggml's reference quantizers (per-block scales).
    pub ggml_ref: bool,
    pub json: bool,
    /// `--cuda`: the CUDA kernels instead of the CPU ones.
    pub cuda: bool,
    /// `--peers`: every format against ggml, f32 and the machine's limits.
    pub peers: bool,
    /// `--vs FORMAT`: formats timed interleaved, each point with its time ratio to FORMAT.
    pub vs: Option<Format>,
}

impl Default for BenchArgs {
    fn default() -> Self {
        Self {
            shapes: vec![(2560, 2560), (640, 2560), (6912, 2560), (2560, 6912)],
            tokens: vec![1, 128],
            formats: Format::all().collect(),
            threads: vec![1, 0],
            isas: None,
            quick: false,
            ggml_ref: false,
            json: false,
            cuda: false,
            peers: false,
            vs: None,
        }
    }
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let (command, rest) = match args.first().map(String::as_str) {
        None => ("bench", args),
        Some(a) if a.starts_with('-') && !matches!(a, "-h" | "--help" | "-V" | "--version") => {
            ("bench", args)
        }
        Some(a) => (a, &args[1..]),
    };
    match command {
        "-h" | "--help" | "help" => Ok(Command::Help(USAGE)),
        "-V" | "--version" => Ok(Command::Version),
        "info" => parse_info(rest),
        "bench" => parse_bench(rest),
        "convert" => Ok(super::convert::parse(rest)?
            .map_or(Command::Help(super::convert::USAGE), Command::Convert)),
        "inspect" => Ok(super::inspect::parse(rest)?
            .map_or(Command::Help(super::inspect::USAGE), Command::Inspect)),
        other => Err(format!(
            "unknown command '{other}' (commands: info, bench, convert, inspect, help)"
        )),
    }
}

fn parse_info(args: &[String]) -> Result<Command, String> {
    match args.first().map(String::as_str) {
        None => Ok(Command::Info),
        Some("-h" | "--help") => Ok(Command::Help(INFO_USAGE)),
        Some(a) => Err(format!("'tern info' takes no arguments (got '{a}')")),
    }
}

fn parse_format(s: &str) -> Result<Format, String> {
    Format::from_name(s).ok_or_else(|| {
        format!(
            "unknown format '{}' (known: {})",
            s.to_ascii_lowercase(),
            Format::names()
        )
    })
}

/// Walks a subcommand's arguments: flags, `--name value`, `--name=value` and positionals.
pub struct Scanner<'a> {
    args: &'a [String],
    next: usize,
}

/// One argument: as written, its name (before the `=` of `--name=value`) and its inline value.
pub struct Arg<'a> {
    pub raw: &'a str,
    pub name: &'a str,
    pub inline: Option<&'a str>,
}

impl<'a> Scanner<'a> {
    pub fn new(args: &'a [String]) -> Self {
        Self { args, next: 0 }
    }

    pub fn next_arg(&mut self) -> Option<Arg<'a>> {
        let raw = self.args.get(self.next)?.as_str();
        self.next += 1;
        Some(match raw.split_once('=') {
            Some((name, v)) if name.starts_with("--") => Arg {
                raw,
                name,
                inline: Some(v),
            },
            _ => Arg {
                raw,
                name: raw,
                inline: None,
            },
        })
    }

    /// The value of option `arg`: its inline value, else the next argument.
    pub fn value(&mut self, arg: &Arg) -> Result<String, String> {
        if let Some(v) = arg.inline {
            return Ok(v.to_string());
        }
        let v = self
            .args
            .get(self.next)
            .ok_or_else(|| format!("option {} needs a value", arg.name))?;
        self.next += 1;
        Ok(v.clone())
    }
}

fn parse_bench(args: &[String]) -> Result<Command, String> {
    let mut b = BenchArgs::default();
    let mut scan = Scanner::new(args);
    let mut given = Vec::new();
    while let Some(arg) = scan.next_arg() {
        let name = arg.name;
        given.push(name);
        let takes_value = matches!(
            name,
            "--shapes" | "--tokens" | "--formats" | "--threads" | "--isa" | "--vs"
        );
        if !takes_value && arg.inline.is_some() {
            return Err(format!("option {name} takes no value (got '{}')", arg.raw));
        }
        let mut value = || scan.value(&arg);
        match name {
            "-h" | "--help" => return Ok(Command::Help(BENCH_USAGE)),
            "--quick" => b.quick = true,
            "--ggml-ref" => b.ggml_ref = true,
            "--cuda" => b.cuda = true,
            "--peers" => b.peers = true,
            "--json" => b.json = true,
            "--shapes" => b.shapes = list(name, &value()?, parse_shape)?,
            "--tokens" => b.tokens = list(name, &value()?, |s| parse_int(s, 1, MAX_TOKENS))?,
            "--threads" => {
                b.threads = list(name, &value()?, |s| {
                    parse_int(s, 0, MAX_THREADS as usize).map(|n| n as i32)
                })?
            }
            "--isa" => b.isas = parse_isas(&value()?)?,
            "--formats" => b.formats = list(name, &value()?, parse_format)?,
            "--vs" => b.vs = Some(parse_format(&value()?)?),
            other => {
                return Err(format!(
                    "unknown option '{other}' for 'tern bench' (run 'tern bench --help' for the options)"
                ));
            }
        }
    }
    // The two special benches take fewer options; one they would ignore is an error.
    let (mode, unused): (&str, &[&str]) = match (b.peers, b.cuda) {
        (true, true) => return Err("--peers and --cuda are separate benches: pick one".into()),
        (true, false) => ("--peers", &["--formats", "--isa", "--json", "--vs"]),
        (false, true) => ("--cuda", &["--formats", "--isa", "--threads", "--vs"]),
        (false, false) => {
            if let Some(vs) = b.vs.filter(|vs| !b.formats.contains(vs)) {
                return Err(format!(
                    "--vs {}: the format to compare with must be among --formats",
                    vs.name().to_lowercase()
                ));
            }
            return Ok(Command::Bench(b));
        }
    };
    match given.iter().find(|g| unused.contains(g)) {
        Some(opt) => Err(format!(
            "{opt} does not apply to 'tern bench {mode}' (run 'tern bench --help' for what it takes)"
        )),
        None => Ok(Command::Bench(b)),
    }
}

/// A non-empty comma-separated list; each item parsed by `item`.
fn list<T>(
    option: &str,
    s: &str,
    item: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    let items: Vec<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if items.is_empty() {
        return Err(format!(
            "option {option} needs a non-empty comma-separated list (got '{s}')"
        ));
    }
    items
        .into_iter()
        .map(|s| item(s).map_err(|e| format!("{option}: {e}")))
        .collect()
}

fn parse_int(s: &str, min: usize, max: usize) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(format!("'{s}' is not an integer in {min}..={max}")),
    }
}

/// `MxK` (rows = out features, cols = in features); also accepts `X` or `×`.
fn parse_shape(s: &str) -> Result<(usize, usize), String> {
    let parts: Vec<&str> = s.split(['x', 'X', '×']).collect();
    let [m, k] = parts[..] else {
        return Err(format!(
            "'{s}' is not a shape MxK (e.g. 2560x6912: 2560 outputs, 6912 inputs)"
        ));
    };
    let m = parse_int(m, 1, MAX_DIM).map_err(|e| format!("rows of '{s}': {e}"))?;
    let k = parse_int(k, 1, MAX_DIM).map_err(|e| format!("cols of '{s}': {e}"))?;
    if !k.is_multiple_of(128) {
        return Err(format!(
            "'{s}': I2_S (x86) needs the input dimension K to be a multiple of 128 (got {k})"
        ));
    }
    Ok((m, k))
}

/// ISA names, or `all`; each must be available on this CPU.
fn parse_isas(s: &str) -> Result<Option<Vec<Isa>>, String> {
    let names = list("--isa", s, |n| Ok(n.to_ascii_lowercase()))?;
    if names.iter().any(|n| n == "all") {
        return Ok(None);
    }
    let available = || {
        Isa::available()
            .map(Isa::name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut isas = Vec::new();
    for n in names {
        let isa = Isa::ALL
            .into_iter()
            .find(|isa| isa.name() == n)
            .ok_or_else(|| {
                let known = Isa::ALL.map(Isa::name).join(", ");
                format!("--isa: unknown ISA level '{n}' (known: {known}, all)")
            })?;
        if !isa.is_available() {
            return Err(format!(
                "--isa: {n} is not available on this CPU (available: {})",
                available()
            ));
        }
        if !isas.contains(&isa) {
            isas.push(isa);
        }
    }
    Ok(Some(isas))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn bench(s: &str) -> BenchArgs {
        match parse(&args(s)) {
            Ok(Command::Bench(b)) => b,
            Ok(_) => panic!("'{s}' did not parse as bench"),
            Err(e) => panic!("'{s}': {e}"),
        }
    }

    #[test]
    fn defaults_and_options() {
        let b = bench("");
        assert_eq!(b.shapes.len(), 4);
        assert_eq!(b.tokens, [1, 128]);
        assert_eq!(b.threads, [1, 0]);
        let b = bench(
            "bench --shapes 256x512,128X1024 --tokens=1,8 --threads 2 --quick --json --isa scalar",
        );
        assert_eq!(b.shapes, [(256, 512), (128, 1024)]);
        assert_eq!(b.tokens, [1, 8]);
        assert_eq!(b.threads, [2]);
        assert!(b.quick && b.json);
        assert_eq!(b.isas, Some(vec![Isa::Scalar]));
        assert!(bench("--quick").quick);
        assert!(bench("bench --peers --tokens 1").peers);
        let b = bench("bench --formats tq2_0,q2_0 --vs tq2_0");
        assert_eq!(b.vs, Some(Format::Tq2_0));
    }

    /// The scanner behind every subcommand's parser: inline and next-argument values, flags,
    /// positionals, `=` inside a positional, and a value missing at the end.
    #[test]
    fn scanner() {
        let a = args("--x=1 --y 2 -q file=a.gguf --z");
        let mut scan = Scanner::new(&a);
        let mut got = Vec::new();
        while let Some(arg) = scan.next_arg() {
            let v = match arg.name {
                "--x" | "--y" | "--z" => scan.value(&arg),
                _ => Ok(String::new()),
            };
            got.push((arg.raw.to_string(), arg.name.to_string(), v));
        }
        let want = [
            ("--x=1", "--x", Ok("1")),
            ("--y", "--y", Ok("2")),
            ("-q", "-q", Ok("")),
            ("file=a.gguf", "file=a.gguf", Ok("")),
            ("--z", "--z", Err("option --z needs a value")),
        ];
        assert_eq!(got.len(), want.len());
        for ((raw, name, v), (wr, wn, wv)) in got.iter().zip(want) {
            assert_eq!((raw.as_str(), name.as_str()), (wr, wn));
            assert_eq!(v.as_deref(), wv.map_err(String::from).as_deref());
        }
    }

    #[test]
    fn errors() {
        for bad in [
            "frobnicate",
            "bench --shapes 100x100",
            "bench --shapes 2560",
            "bench --tokens 0",
            "bench --tokens",
            "bench --threads -1",
            "bench --isa sse9",
            "bench --bogus",
            "bench --quick=1",
            "bench --peers --formats tl2",
            "bench --peers --isa avx2",
            "bench --peers --json",
            "bench --cuda --threads 1",
            "bench --peers --cuda",
            "bench --formats q2_0 --vs tq2_0",
            "bench --vs",
            "bench --peers --vs tq2_0",
            "info extra",
        ] {
            assert!(parse(&args(bad)).is_err(), "'{bad}' should be rejected");
        }
    }
}

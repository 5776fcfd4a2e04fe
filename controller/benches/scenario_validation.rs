//! How validation time grows with the number of errors in one scenario file.
//!
//! Run with `cargo bench -p gameday --bench scenario_validation` (add `--profile dev` to skip the
//! release build of every dependency; the growth ratio is what matters, not the absolute time).
//! Validation must stay linear: 40 times the errors should take about 40 times as long, not
//! 1,600 times.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

const SIZES: &[usize] = &[1_000, 10_000, 40_000];

/// A valid scenario head: every error below comes from the probes or the targets.
const HEAD: &str =
    "name = \"bench\"\nrto = \"1s\"\n\n[[faults]]\nkind = \"process_kill\"\nname = \"x\"\n\n";

/// `n` probes that all share one name: `n - 1` "duplicate probe name" errors.
fn duplicate_probe_names(n: usize) -> String {
    let mut text = format!("{HEAD}[targets]\nagents = [\"a\"]\n");
    for _ in 0..n {
        text.push_str("[[probes]]\nname = \"same\"\nkind = \"tcp\"\naddress = \"127.0.0.1:80\"\n");
    }
    text
}

/// `n` probes, each with an interval below the minimum: `n` errors, one per probe.
fn bad_intervals(n: usize) -> String {
    let mut text = format!("{HEAD}[targets]\nagents = [\"a\"]\n");
    for i in 0..n {
        let _ = write!(
            text,
            "[[probes]]\nname = \"p{i}\"\nkind = \"tcp\"\naddress = \"127.0.0.1:80\"\ninterval = \"1ms\"\n"
        );
    }
    text
}

/// `n` empty agent names on one line: `n` errors whose columns are all on that line.
fn one_long_line(n: usize) -> String {
    let agents = vec!["\"\""; n].join(", ");
    format!(
        "{HEAD}[targets]\nagents = [{agents}]\n\n[[probes]]\nname = \"p\"\nkind = \"tcp\"\naddress = \"127.0.0.1:80\"\n"
    )
}

/// A named way to build a scenario with `n` errors.
type Case = (&'static str, fn(usize) -> String);

fn time(text: &str) -> (Duration, usize) {
    let started = Instant::now();
    let result = gameday::scenario::parse("bench.toml", text);
    let took = started.elapsed();
    let errors = result.err().map_or(0, |e| e.total());
    (took, errors)
}

fn main() {
    let cases: &[Case] = &[
        ("duplicate probe names", duplicate_probe_names),
        ("probe intervals below the minimum", bad_intervals),
        ("empty agent names on one line", one_long_line),
    ];
    for (name, build) in cases {
        println!("{name}:");
        let mut first: Option<(usize, Duration)> = None;
        for &n in SIZES {
            let text = build(n);
            let (took, errors) = time(&text);
            let growth = first.map_or(String::new(), |(n0, t0)| {
                format!(
                    "  ({:.1}x the input, {:.1}x the time)",
                    n as f64 / n0 as f64,
                    took.as_secs_f64() / t0.as_secs_f64()
                )
            });
            println!(
                "  {n:>6} items, {:>7.2} MB, {errors:>6} errors: {:>9.1} ms{growth}",
                text.len() as f64 / 1e6,
                took.as_secs_f64() * 1e3,
            );
            first.get_or_insert((n, took));
        }
    }
}

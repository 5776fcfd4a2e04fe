//! The fuzz targets' properties as an ordinary test, so CI checks them without cargo-fuzz:
//! every file of `fuzz/corpus/scenario/`, and proptest mutations of them (byte flips,
//! truncations, inserted lines, huge numbers, NULs), either parse or are rejected with errors
//! that each carry `file:line:col`; random and mutated `FaultSpec` wire messages either fail to
//! decode, are rejected, or give a fault whose wire form reads back the same. Nothing panics.
//!
//! Case counts are small so a debug build runs this in seconds; `cargo fuzz` (see README,
//! Development) runs the same properties for as long as you like.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use gameday::scenario;
use gameday_proto::{v1, Fault};
use proptest::prelude::*;
use proptest::sample::Index;
use prost::Message;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/scenario")
}

/// The corpus files, sorted by name: `(name, bytes)`.
fn corpus() -> &'static [(String, Vec<u8>)] {
    static CORPUS: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus_dir())
            .expect("fuzz/corpus/scenario exists")
            .map(|entry| {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&path).unwrap())
            })
            .collect();
        files.sort();
        assert!(files.len() >= 20, "the corpus has its seeds");
        files
    })
}

/// The property of the `scenario` fuzz target.
fn check_scenario(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Err(errors) = scenario::parse("fuzz.toml", text) {
        assert!(
            !errors.errors().is_empty(),
            "a rejection names at least one error"
        );
        for e in errors.errors() {
            assert!(e.line >= 1 && e.column >= 1, "{e}");
            assert!(!e.message.trim().is_empty(), "{e}");
            let prefix = format!("fuzz.toml:{}:{}: ", e.line, e.column);
            assert!(e.to_string().starts_with(&prefix), "{e}");
            let lines = text.split('\n').count();
            assert!(e.line <= lines.max(1), "line {} of {lines}: {e}", e.line);
        }
    }
}

/// The property of the `fault_wire` fuzz target.
fn check_fault_wire(bytes: &[u8]) {
    let Ok(spec) = v1::FaultSpec::decode(bytes) else {
        return;
    };
    match Fault::from_wire(&spec) {
        Ok(fault) => {
            let again = Fault::from_wire(&fault.to_wire());
            assert_eq!(again.as_ref(), Ok(&fault), "to_wire/from_wire round-trips");
        }
        Err(e) => assert!(!e.to_string().trim().is_empty()),
    }
}

#[test]
fn every_corpus_file_parses_or_is_rejected_with_positions() {
    let mut valid = 0;
    for (name, bytes) in corpus() {
        let outcome = std::panic::catch_unwind(|| check_scenario(bytes));
        assert!(outcome.is_ok(), "{name} panics the parser");
        let text = String::from_utf8_lossy(bytes);
        valid += usize::from(scenario::parse(name, &text).is_ok());
    }
    // The shipped scenarios are in the corpus, and they are valid.
    assert!(valid >= 12, "only {valid} corpus files are valid scenarios");
}

/// Wire forms of the faults of every valid corpus scenario.
fn wire_seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        corpus()
            .iter()
            .filter_map(|(name, bytes)| {
                scenario::parse(name, std::str::from_utf8(bytes).ok()?).ok()
            })
            .flat_map(|s| s.faults.into_iter())
            .map(|f| f.to_wire().encode_to_vec())
            .collect()
    })
}

#[test]
fn every_seed_fault_round_trips() {
    assert!(wire_seeds().len() >= 5, "every fault kind has seeds");
    for seed in wire_seeds() {
        check_fault_wire(seed);
    }
}

/// One change to a file.
#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(Index, u8),
    Truncate(Index),
    InsertLine(Index, String),
    InsertBytes(Index, Vec<u8>),
    Delete(Index, usize),
}

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[[faults]]".to_string()),
        Just("[[probes]]".to_string()),
        Just("[targets]".to_string()),
        Just("kind = \"network_partition\"".to_string()),
        Just("rto = \"0s\"".to_string()),
        Just("repeat = 18446744073709551616".to_string()),
        Just("duration = \"99999999999999999999h\"".to_string()),
        Just("interval = \"1ns\"".to_string()),
        Just("peers = [\"10.0.0.0/33\", \"::/129\"]".to_string()),
        Just("size = \"18446744073709551615TiB\"".to_string()),
        Just("fill_to = 4294967296".to_string()),
        Just("max_targets = -9223372036854775808".to_string()),
        Just("name = \"\\u0000\"".to_string()),
        Just("x = 1e999".to_string()),
        "[a-z_]{1,14} = \"[ -~]{0,24}\"",
        "[a-z_]{1,14} = -?[0-9]{1,30}",
        "\\PC{0,40}",
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), line()).prop_map(|(i, l)| Mutation::InsertLine(i, l)),
        (
            any::<Index>(),
            prop_oneof![
                Just(vec![0u8]),
                Just(b"99999999999999999999999999".to_vec()),
                Just(b"\"".to_vec()),
                Just(b"[".to_vec()),
                Just("\u{feff}".as_bytes().to_vec()),
                prop::collection::vec(any::<u8>(), 1..8),
            ]
        )
            .prop_map(|(i, b)| Mutation::InsertBytes(i, b)),
        (any::<Index>(), 1usize..40).prop_map(|(i, n)| Mutation::Delete(i, n)),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len + 1) };
    match mutation {
        Mutation::FlipBit(i, bit) if !bytes.is_empty() => {
            let at = i.index(bytes.len());
            bytes[at] ^= 1 << bit;
        }
        Mutation::FlipBit(..) => {}
        Mutation::Truncate(i) => bytes.truncate(at(i, bytes.len())),
        Mutation::InsertLine(i, line) => {
            // At a line start, so the line stands on its own.
            let starts: Vec<usize> = std::iter::once(0)
                .chain(
                    bytes
                        .iter()
                        .enumerate()
                        .filter(|(_, b)| **b == b'\n')
                        .map(|(n, _)| n + 1),
                )
                .collect();
            let at = starts[i.index(starts.len())];
            bytes.splice(at..at, format!("{line}\n").into_bytes());
        }
        Mutation::InsertBytes(i, inserted) => {
            let at = at(i, bytes.len());
            bytes.splice(at..at, inserted.iter().copied());
        }
        Mutation::Delete(i, n) => {
            let start = at(i, bytes.len());
            let end = (start + n).min(bytes.len());
            bytes.drain(start..end);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_corpus_files_parse_or_are_rejected_with_positions(
        file in any::<Index>(),
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        let (_, original) = file.get(corpus());
        let mut bytes = original.clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        check_scenario(&bytes);
    }

    #[test]
    fn random_fault_wire_messages_are_decoded_safely(
        bytes in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        check_fault_wire(&bytes);
    }

    #[test]
    fn mutated_fault_wire_messages_are_decoded_safely(
        seed in any::<Index>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut bytes = seed.get(wire_seeds()).clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        check_fault_wire(&bytes);
    }
}

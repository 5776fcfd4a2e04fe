//! Scenario parser and validator: any text either parses or is rejected with errors that each
//! carry a position; nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(errors) = gameday::scenario::parse("fuzz.toml", text) {
        assert!(!errors.errors().is_empty(), "a rejection names at least one error");
        for e in errors.errors() {
            assert!(e.line >= 1 && e.column >= 1, "{e}");
            assert!(!e.message.is_empty(), "{e}");
        }
    }
});

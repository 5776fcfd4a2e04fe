//! Wire-to-spec conversion of every fault, as the agent receives it: any bytes either fail to
//! decode, are rejected with an error, or give a fault whose wire form reads back the same.
#![no_main]

use gameday_proto::{v1, Fault};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = v1::FaultSpec::decode(data) else {
        return;
    };
    match Fault::from_wire(&spec) {
        Ok(fault) => {
            let again =
                Fault::from_wire(&fault.to_wire()).expect("a fault's own wire form is valid");
            assert_eq!(again, fault, "to_wire/from_wire round-trips");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});

//! Commands in the Raft log (as forwarded between servers): decode, and anything that decodes round-trips.
#![no_main]
use libfuzzer_sys::fuzz_target;
use protocol::codec::{decode, encode};
use protocol::wire::Command;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = decode::<Command>(data) {
        let again = encode(&v).expect("a decoded value encodes");
        assert_eq!(decode::<Command>(&again).ok(), Some(v));
    }
});

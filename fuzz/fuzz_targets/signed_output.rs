//! Outputs gossiped between servers and clients: decode, and anything that decodes round-trips.
#![no_main]
use libfuzzer_sys::fuzz_target;
use protocol::codec::{decode, encode};
use protocol::wire::SignedOutput;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = decode::<SignedOutput>(data) {
        let again = encode(&v).expect("a decoded value encodes");
        assert_eq!(decode::<SignedOutput>(&again).ok(), Some(v));
    }
});

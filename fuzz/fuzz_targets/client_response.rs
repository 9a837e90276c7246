//! Answers clients read from servers: decode, and anything that decodes round-trips.
#![no_main]
use libfuzzer_sys::fuzz_target;
use protocol::codec::{decode, encode};
use protocol::wire::ClientResponse;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = decode::<ClientResponse>(data) {
        let again = encode(&v).expect("a decoded value encodes");
        assert_eq!(decode::<ClientResponse>(&again).ok(), Some(v));
    }
});

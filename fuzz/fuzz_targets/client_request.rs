//! Requests clients send to servers: decode, and anything that decodes re-encodes to a
//! value that decodes the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use protocol::codec::{decode, encode};
use protocol::wire::ClientRequest;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = decode::<ClientRequest>(data) {
        let again = encode(&req).expect("a decoded request encodes");
        assert_eq!(decode::<ClientRequest>(&again).ok(), Some(req));
    }
});

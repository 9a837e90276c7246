//! Raft RPCs between servers (AppendEntries, Vote, InstallSnapshot, forwarded commands).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = protocol::codec::decode::<actors::types::PeerRequest>(data);
    let _ = protocol::codec::decode::<actors::types::PeerResponse>(data);
});

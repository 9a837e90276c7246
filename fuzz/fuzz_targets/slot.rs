//! Slots of a revealed output: every client inspects and trial-opens every slot.
#![no_main]
use libfuzzer_sys::fuzz_target;
use x25519_dalek::StaticSecret;

fuzz_target!(|data: &[u8]| {
    let _ = protocol::slot::inspect_slot(data);
    let me = StaticSecret::from([7u8; 32]);
    let _ = protocol::slot::open_slot(data, &me);
});

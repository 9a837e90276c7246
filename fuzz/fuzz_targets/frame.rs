//! The length-prefixed stream framing both protocols use: a frame or a labelled error.
#![no_main]
use futures::executor::block_on;
use futures::io::Cursor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match block_on(p2p::frame::read_frame(&mut Cursor::new(data))) {
        Ok(frame) => assert!(frame.len() + 4 <= data.len()),
        Err(e) => {
            let label = p2p::frame::classify(&e);
            assert!(["truncated_frame", "frame_too_large", "malformed_frame"].contains(&label));
        }
    }
});

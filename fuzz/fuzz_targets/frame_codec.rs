//! The frame codec on arbitrary bytes: decoding never panics, and every frame decoded
//! encodes back to bytes that decode to the same frame.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tether_wire::tunnel::Frame;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((frame, used))) = Frame::decode(rest) {
        assert!(used > 0 && used <= rest.len());
        rest = &rest[used..];
        let Some(frame) = frame else { continue };
        let mut again = BytesMut::new();
        frame.encode(&mut again);
        let (back, used_again) = Frame::decode(&again)
            .expect("an encoded frame decodes")
            .expect("an encoded frame is complete");
        assert_eq!(used_again, again.len());
        assert_eq!(back, Some(frame));
    }
});

//! A real session (the accepting side, as the agent runs it) fed arbitrary bytes as its
//! peer: it must never panic, and must end (by a protocol error, the peer's end of stream,
//! or the heartbeat) with its memory bounded by the session's limits. The first byte
//! chooses whether a valid Hello goes first, so the fuzzer reaches the framed part at once.
#![no_main]

use std::time::Duration;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tether_wire::tunnel::{Frame, HelloMeta, Session, Settings, Side, VERSION};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime builds");
    rt.block_on(async move {
        let (ours, peer) = tokio::io::duplex(64 * 1024);
        let mut input = BytesMut::new();
        if mode & 1 == 1 {
            Frame::Hello {
                version: VERSION,
                meta: HelloMeta::default(),
            }
            .encode(&mut input);
        }
        input.extend_from_slice(rest);
        let feed = tokio::spawn(async move {
            let (mut rd, mut wr) = tokio::io::split(peer);
            let drain = tokio::spawn(async move {
                let mut sink = vec![0u8; 16 * 1024];
                while rd.read(&mut sink).await.is_ok_and(|n| n > 0) {}
            });
            let _ = wr.write_all(&input).await;
            // Half the time the peer then goes quiet, half the time it hangs up.
            if mode & 2 == 2 {
                let _ = wr.shutdown().await;
            }
            let _ = drain.await;
        });
        let run = async {
            let handshake = Session::hear(ours, HelloMeta::default()).await?;
            let mut session = handshake.welcome(Side::Acceptor, Settings::default());
            // Echo every stream the peer opens, so data flows both ways.
            while let Some(incoming) = session.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = tokio::io::split(incoming.stream);
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
            Ok::<_, tether_wire::tunnel::TunnelError>(session.close_reason())
        };
        // Paused time: the heartbeat ends a quiet peer's session in virtual seconds.
        let _ = tokio::time::timeout(Duration::from_secs(60), run).await;
        feed.abort();
    });
});


//! The frames and their byte codec: [`Frame::encode`] into a buffer, [`Frame::decode`] from
//! the front of one, [`Frame::read`] from a byte stream. The layout is in the parent
//! module's doc; nothing here keeps state.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{HEADER_LEN, HelloMeta, MAGIC, MAX_PAYLOAD, TunnelError, VERSION};

/// One frame of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Hello { version: u16, meta: HelloMeta },
    Open { id: u32, target: String },
    Data { id: u32, data: Bytes },
    Window { id: u32, credit: u32 },
    Eof { id: u32 },
    Reset { id: u32 },
    Ping { nonce: u64 },
    Pong { nonce: u64 },
    GoAway { reason: String },
}

mod kind {
    pub const HELLO: u8 = 0;
    pub const OPEN: u8 = 1;
    pub const DATA: u8 = 2;
    pub const WINDOW: u8 = 3;
    pub const EOF: u8 = 4;
    pub const RESET: u8 = 5;
    pub const PING: u8 = 6;
    pub const PONG: u8 = 7;
    pub const GOAWAY: u8 = 8;
}

impl Frame {
    /// Appends the frame's bytes to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        let (kind, id, payload): (u8, u32, Bytes) = match self {
            Frame::Hello { version, meta } => {
                let mut p = BytesMut::new();
                p.put_slice(&MAGIC);
                p.put_u16(*version);
                // Serialising plain strings and vectors cannot fail.
                p.put_slice(&serde_json::to_vec(meta).unwrap_or_default());
                (kind::HELLO, 0, p.freeze())
            }
            Frame::Open { id, target } => {
                (kind::OPEN, *id, Bytes::copy_from_slice(target.as_bytes()))
            }
            Frame::Data { id, data } => (kind::DATA, *id, data.clone()),
            Frame::Window { id, credit } => (
                kind::WINDOW,
                *id,
                Bytes::copy_from_slice(&credit.to_be_bytes()),
            ),
            Frame::Eof { id } => (kind::EOF, *id, Bytes::new()),
            Frame::Reset { id } => (kind::RESET, *id, Bytes::new()),
            Frame::Ping { nonce } => (kind::PING, 0, Bytes::copy_from_slice(&nonce.to_be_bytes())),
            Frame::Pong { nonce } => (kind::PONG, 0, Bytes::copy_from_slice(&nonce.to_be_bytes())),
            Frame::GoAway { reason } => {
                (kind::GOAWAY, 0, Bytes::copy_from_slice(reason.as_bytes()))
            }
        };
        out.reserve(HEADER_LEN + payload.len());
        out.put_u8(kind);
        out.put_u32(id);
        out.put_u32(payload.len() as u32);
        out.put_slice(&payload);
    }

    /// Decodes one frame from the front of `buf`: `Ok(None)` when more bytes are needed;
    /// otherwise the frame (or `None` for a skipped unknown kind) and the bytes used.
    #[allow(clippy::type_complexity)]
    pub fn decode(buf: &[u8]) -> Result<Option<(Option<Frame>, usize)>, TunnelError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let (kind, id, len) = header(&buf[..HEADER_LEN])?;
        if buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let payload = Bytes::copy_from_slice(&buf[HEADER_LEN..HEADER_LEN + len]);
        let frame = parse(kind, id, payload)?;
        Ok(Some((frame, HEADER_LEN + len)))
    }

    /// Reads one frame; `Ok(None)` at a clean end of stream between frames. Unknown kinds
    /// are skipped, as the compatibility rules say.
    pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Frame>, TunnelError> {
        loop {
            let mut head = [0u8; HEADER_LEN];
            match r.read_exact(&mut head).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(e.into()),
            }
            let (kind, id, len) = header(&head)?;
            // Read straight into the buffer a Data frame hands on: no second copy.
            let mut payload = BytesMut::zeroed(len);
            r.read_exact(&mut payload).await?;
            if let Some(frame) = parse(kind, id, payload.freeze())? {
                return Ok(Some(frame));
            }
        }
    }
}

/// Kind, stream id and payload length of a header; a length over the limit is refused
/// before anything is allocated for it.
fn header(mut h: &[u8]) -> Result<(u8, u32, usize), TunnelError> {
    let kind = h.get_u8();
    let id = h.get_u32();
    let len = h.get_u32() as usize;
    if len > MAX_PAYLOAD {
        return Err(TunnelError::Protocol(format!(
            "frame of {len} bytes exceeds {MAX_PAYLOAD}"
        )));
    }
    Ok((kind, id, len))
}

fn parse(kind: u8, id: u32, payload: Bytes) -> Result<Option<Frame>, TunnelError> {
    let text = |p: &[u8]| {
        String::from_utf8(p.to_vec())
            .map_err(|_| TunnelError::Protocol("a text payload is not UTF-8".into()))
    };
    let u32_of = |p: &[u8]| -> Result<u32, TunnelError> {
        let b: [u8; 4] = p
            .try_into()
            .map_err(|_| TunnelError::Protocol("a u32 payload has the wrong length".into()))?;
        Ok(u32::from_be_bytes(b))
    };
    let u64_of = |p: &[u8]| -> Result<u64, TunnelError> {
        let b: [u8; 8] = p
            .try_into()
            .map_err(|_| TunnelError::Protocol("a u64 payload has the wrong length".into()))?;
        Ok(u64::from_be_bytes(b))
    };
    Ok(Some(match kind {
        kind::HELLO => {
            if payload.len() < 6 || payload[..4] != MAGIC {
                return Err(TunnelError::NotTether);
            }
            let version = u16::from_be_bytes([payload[4], payload[5]]);
            let meta = if version == VERSION {
                // A hello of this version that does not parse is refused: read as defaults
                // it would be a laptop asking for all traffic.
                serde_json::from_slice(&payload[6..]).map_err(TunnelError::BadHello)?
            } else {
                // A peer of another version may say things this one cannot read; the
                // version check reports that better than a JSON error would.
                serde_json::from_slice(&payload[6..]).unwrap_or_default()
            };
            Frame::Hello { version, meta }
        }
        kind::OPEN => Frame::Open {
            id,
            target: text(&payload)?,
        },
        kind::DATA => Frame::Data { id, data: payload },
        kind::WINDOW => Frame::Window {
            id,
            credit: u32_of(&payload)?,
        },
        kind::EOF => Frame::Eof { id },
        kind::RESET => Frame::Reset { id },
        kind::PING => Frame::Ping {
            nonce: u64_of(&payload)?,
        },
        kind::PONG => Frame::Pong {
            nonce: u64_of(&payload)?,
        },
        kind::GOAWAY => Frame::GoAway {
            reason: text(&payload)?,
        },
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, BytesMut};

    use super::*;
    use crate::tunnel::{Filter, MAGIC, MAX_PAYLOAD, Role, VERSION};

    fn all_frames() -> Vec<Frame> {
        vec![
            Frame::Hello {
                version: VERSION,
                meta: HelloMeta {
                    role: Role::Laptop,
                    name: "me@laptop".into(),
                    filter: Filter {
                        headers: vec![("x-dev".into(), "alice".into())],
                    },
                    token: "s3cret".into(),
                },
            },
            Frame::Hello {
                version: 7,
                meta: HelloMeta::default(),
            },
            Frame::Open {
                id: 3,
                target: String::new(),
            },
            Frame::Open {
                id: u32::MAX,
                target: "orders-svc.api:80".into(),
            },
            Frame::Data {
                id: 5,
                data: Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n"),
            },
            Frame::Data {
                id: 6,
                data: Bytes::from(vec![0xAB; MAX_PAYLOAD]),
            },
            Frame::Window {
                id: 5,
                credit: 12345,
            },
            Frame::Eof { id: 9 },
            Frame::Reset { id: 10 },
            Frame::Ping { nonce: u64::MAX },
            Frame::Pong { nonce: 1 },
            Frame::GoAway {
                reason: "version 2 ≠ 1".into(),
            },
        ]
    }

    #[test]
    fn every_frame_round_trips_through_bytes() {
        for f in all_frames() {
            let mut buf = BytesMut::new();
            f.encode(&mut buf);
            let (back, used) = Frame::decode(&buf).unwrap().unwrap();
            assert_eq!(used, buf.len());
            assert_eq!(back, Some(f.clone()));
            // Every strict prefix asks for more bytes, never errs or misparses.
            for cut in [0, 1, HEADER_LEN - 1, HEADER_LEN, buf.len() - 1] {
                if cut < buf.len() {
                    assert!(Frame::decode(&buf[..cut]).unwrap().is_none(), "{f:?} {cut}");
                }
            }
        }
    }

    #[tokio::test]
    async fn frames_read_back_from_a_stream_and_unknown_kinds_are_skipped() {
        let mut buf = BytesMut::new();
        let frames = all_frames();
        frames[0].encode(&mut buf);
        // A frame kind from a future minor addition.
        buf.put_u8(200);
        buf.put_u32(1);
        buf.put_u32(3);
        buf.put_slice(b"new");
        for f in &frames[1..] {
            f.encode(&mut buf);
        }
        let mut r = &buf[..];
        let mut got = Vec::new();
        while let Some(f) = Frame::read(&mut r).await.unwrap() {
            got.push(f);
        }
        assert_eq!(got, frames);
    }

    #[test]
    fn a_hello_of_this_version_whose_settings_do_not_parse_is_refused() {
        for json in [&b"{\"token\": 42}"[..], b"not json", b"[1]"] {
            let payload = [&MAGIC[..], &VERSION.to_be_bytes(), json].concat();
            let mut hello = BytesMut::new();
            hello.put_u8(kind::HELLO);
            hello.put_u32(0);
            hello.put_u32(payload.len() as u32);
            hello.put_slice(&payload);
            assert!(
                matches!(Frame::decode(&hello), Err(TunnelError::BadHello(_))),
                "{json:?}"
            );
        }
        // Unknown fields are fine; another version's settings are not judged.
        let payload = [&MAGIC[..], &VERSION.to_be_bytes(), b"{\"later\": 1}"].concat();
        let mut hello = BytesMut::new();
        hello.put_u8(kind::HELLO);
        hello.put_u32(0);
        hello.put_u32(payload.len() as u32);
        hello.put_slice(&payload);
        assert!(Frame::decode(&hello).unwrap().is_some());
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let mut big = BytesMut::new();
        big.put_u8(kind::DATA);
        big.put_u32(1);
        big.put_u32(MAX_PAYLOAD as u32 + 1);
        assert!(Frame::decode(&big).is_err());
        let mut hello = BytesMut::new();
        hello.put_u8(kind::HELLO);
        hello.put_u32(0);
        hello.put_u32(6);
        hello.put_slice(b"HTTP/1");
        assert!(matches!(Frame::decode(&hello), Err(TunnelError::NotTether)));
        let mut ping = BytesMut::new();
        ping.put_u8(kind::PING);
        ping.put_u32(0);
        ping.put_u32(3);
        ping.put_slice(b"abc");
        assert!(Frame::decode(&ping).is_err());
        // Arbitrary bytes: never a panic.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let len = (seed % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed & 0xff) as u8
                })
                .collect();
            let _ = Frame::decode(&bytes);
        }
    }
}

/// Property tests: any frame survives encode → decode, and any sequence of frames survives
/// being cut into arbitrary pieces on the way (as a byte stream is).
#[cfg(test)]
mod properties {
    use std::{
        pin::Pin,
        task::{Context, Poll},
    };

    use bytes::{Bytes, BytesMut};
    use proptest::prelude::*;
    use tokio::io::{AsyncRead, ReadBuf};

    use super::Frame;
    use crate::tunnel::{Filter, HelloMeta, MAX_PAYLOAD, Role};

    fn meta() -> impl Strategy<Value = HelloMeta> {
        (
            any::<bool>(),
            ".{0,20}",
            proptest::collection::vec(("[a-z-]{1,8}", ".{0,8}"), 0..4),
            ".{0,40}",
        )
            .prop_map(|(agent, name, headers, token)| HelloMeta {
                role: if agent { Role::Agent } else { Role::Laptop },
                name,
                filter: Filter { headers },
                token,
            })
    }

    fn frame() -> impl Strategy<Value = Frame> {
        prop_oneof![
            (any::<u16>(), meta()).prop_map(|(version, meta)| Frame::Hello { version, meta }),
            (any::<u32>(), ".{0,30}").prop_map(|(id, target)| Frame::Open { id, target }),
            (
                any::<u32>(),
                prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..64),
                    proptest::collection::vec(any::<u8>(), MAX_PAYLOAD - 2..=MAX_PAYLOAD),
                ]
            )
                .prop_map(|(id, data)| Frame::Data {
                    id,
                    data: Bytes::from(data)
                }),
            (any::<u32>(), any::<u32>()).prop_map(|(id, credit)| Frame::Window { id, credit }),
            any::<u32>().prop_map(|id| Frame::Eof { id }),
            any::<u32>().prop_map(|id| Frame::Reset { id }),
            any::<u64>().prop_map(|nonce| Frame::Ping { nonce }),
            any::<u64>().prop_map(|nonce| Frame::Pong { nonce }),
            ".{0,60}".prop_map(|reason| Frame::GoAway { reason }),
        ]
    }

    /// Hands out a byte stream in the given pieces, one piece (or less) per read.
    struct Pieces {
        bytes: Vec<u8>,
        cuts: Vec<usize>,
        at: usize,
    }

    impl AsyncRead for Pieces {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            let this = &mut *self;
            let next_cut = this
                .cuts
                .iter()
                .copied()
                .find(|&c| c > this.at)
                .unwrap_or(this.bytes.len());
            let n = (next_cut - this.at).min(buf.remaining());
            buf.put_slice(&this.bytes[this.at..this.at + n]);
            this.at += n;
            Poll::Ready(Ok(()))
        }
    }

    fn encode_all(frames: &[Frame]) -> Vec<u8> {
        let mut out = BytesMut::new();
        for f in frames {
            f.encode(&mut out);
        }
        out.to_vec()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_frame_round_trips(f in frame()) {
            let bytes = encode_all(std::slice::from_ref(&f));
            let (back, used) = Frame::decode(&bytes).unwrap().unwrap();
            prop_assert_eq!(used, bytes.len());
            prop_assert_eq!(back, Some(f));
        }

        #[test]
        fn frames_cut_anywhere_decode_to_the_same_frames(
            frames in proptest::collection::vec(frame(), 1..8),
            cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..12),
        ) {
            let bytes = encode_all(&frames);
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len())).collect();
            cuts.sort();
            // Incrementally, as a receiver that buffers pieces would.
            let mut buf = Vec::new();
            let mut got = Vec::new();
            let mut last = 0;
            for cut in cuts.iter().copied().chain([bytes.len()]) {
                buf.extend_from_slice(&bytes[last..cut]);
                last = cut;
                while let Some((f, used)) = Frame::decode(&buf).unwrap() {
                    got.extend(f);
                    buf.drain(..used);
                }
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(&got, &frames);
            // And from a byte stream that delivers those pieces.
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let read = rt.block_on(async {
                let mut r = Pieces { bytes, cuts, at: 0 };
                let mut read = Vec::new();
                while let Some(f) = Frame::read(&mut r).await.unwrap() {
                    read.push(f);
                }
                read
            });
            prop_assert_eq!(read, frames);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Frame::decode(&bytes);
        }
    }
}

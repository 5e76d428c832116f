//! The laptop↔agent wire protocol: many TCP connections multiplexed over one byte stream
//! (in practice the API server's port-forward stream to the agent's control port).
//!
//! Layout:
//! - this file: the frames, their byte layout, [`VERSION`] and the compatibility rules.
//! - [`session`]: a [`Session`] drives one byte stream: the hello handshake, streams with
//!   per-stream flow control, heartbeats.
//!
//! # Wire format
//! Every frame is a 9-byte header followed by `len` payload bytes:
//!
//! ```text
//! | kind: u8 | stream id: u32 BE | len: u32 BE | payload: len bytes (at most 64 KiB) |
//! ```
//!
//! | kind | frame  | stream id | payload                                             |
//! |------|--------|-----------|-----------------------------------------------------|
//! | 0    | Hello  | 0         | `TTHR`, version u16 BE, JSON [`HelloMeta`]          |
//! | 1    | Open   | new id    | UTF-8 target (empty: "the intercepted port")        |
//! | 2    | Data   | id        | bytes, never more than the receiver's credit        |
//! | 3    | Window | id        | u32 BE: bytes the receiver consumed (credit back)    |
//! | 4    | Eof    | id        | none: the sender will write no more on this stream   |
//! | 5    | Reset  | id        | none: the stream is aborted in both directions       |
//! | 6    | Ping   | 0         | u64 BE nonce                                        |
//! | 7    | Pong   | 0         | a ping's nonce (reserved: not sent by version 1)    |
//! | 8    | GoAway | 0         | UTF-8 reason; the sender closes the session next     |
//!
//! Each side sends Hello first and reads the peer's before anything else. The side that
//! dialled (the laptop) opens odd stream ids, the side that accepted (the agent) even ones,
//! so both may open streams without agreeing first. Every stream starts with
//! [`WINDOW`] bytes of credit in each direction; a sender waits for Window frames before
//! it sends more, so one slow connection never stalls the others or grows memory.
//! A receiver may return credit in batches (this version: every quarter window), so a
//! request/response exchange costs one write each way.
//! A side that has written nothing for [`Heartbeat::interval`] sends a Ping (no answer is
//! needed: the peer pings when it is quiet), and a side declares the peer gone after
//! [`Heartbeat::dead_after`] without any frame from it: the agent uses that to send
//! traffic back to the app within a second of a laptop vanishing. Pong is reserved for
//! round-trip measurements.
//!
//! # Compatibility rules
//! - A session runs only when both Hellos carry the same [`VERSION`]; otherwise the side
//!   that notices sends GoAway naming both versions and closes. The laptop installs the
//!   agent from its own binary, so a mismatch means "another tether installed this agent":
//!   the laptop then replaces the agent image.
//! - A frame kind this version does not know is skipped (its payload read and dropped):
//!   optional new frames can be added without a version bump.
//! - Unknown fields in the Hello JSON are ignored and missing ones take their defaults:
//!   optional new settings can be added without a version bump.
//! - Anything else (a changed layout, a changed meaning, a new required frame, a different
//!   [`WINDOW`]) bumps [`VERSION`].

pub mod session;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

pub use self::session::{Heartbeat, Incoming, Opener, Session, Side};

/// The protocol version; see the compatibility rules in the module doc.
pub const VERSION: u16 = 1;
/// The first bytes of a Hello payload: a peer that is not tether is told apart at once.
pub const MAGIC: [u8; 4] = *b"TTHR";
/// The largest payload a frame may carry.
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// Bytes of the frame header.
pub const HEADER_LEN: usize = 9;
/// The credit each stream starts with in each direction.
pub const WINDOW: u32 = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("the tunnel's byte stream failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the peer is not a tether tunnel (bad hello)")]
    NotTether,
    #[error(
        "protocol version mismatch: this side speaks {ours}, the peer {theirs}; \
         the agent must come from the same tether version as the laptop"
    )]
    Version { ours: u16, theirs: u16 },
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("the peer said goodbye: {0}")]
    GoAway(String),
    #[error("no frame from the peer for {0:?}: it is gone")]
    Silent(std::time::Duration),
    #[error("the session is closed")]
    Closed,
    #[error("timed out waiting for the peer's hello")]
    HelloTimeout,
}

/// Which end of the tunnel a peer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Laptop,
    Agent,
}

/// Which HTTP requests a laptop wants; empty means every connection (all traffic).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Filter {
    /// Every (name, value) must be present: names compare case-insensitively, values exactly.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
}

impl Filter {
    pub fn is_all(&self) -> bool {
        self.headers.is_empty()
    }

    /// Parses `NAME=VALUE` (the CLI's `--header`).
    pub fn parse_header(text: &str) -> Option<(String, String)> {
        let (name, value) = text.split_once('=')?;
        let name = name.trim();
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        valid.then(|| (name.to_ascii_lowercase(), value.to_owned()))
    }
}

/// What a peer says about itself in its Hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HelloMeta {
    #[serde(default)]
    pub role: Role,
    /// Who is speaking, for logs: the laptop's user@host, the agent's pod.
    #[serde(default)]
    pub name: String,
    /// The laptop's routing wish; ignored in an agent's Hello.
    #[serde(default)]
    pub filter: Filter,
    /// The laptop's proof that it may attach: the intercept's secret, which only someone
    /// allowed to read the intercept's Secret in the cluster has. Empty in an agent's Hello.
    #[serde(default)]
    pub token: String,
}

/// The target of an Open that asks the agent who is attached (to any of its laptops'
/// sessions): the agent answers with a JSON array of [`LaptopInfo`] and ends the stream.
pub const LAPTOPS_TARGET: &str = "tether:laptops";

/// One laptop attached to an agent, as [`LAPTOPS_TARGET`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LaptopInfo {
    /// The laptop's user@host, from its Hello.
    #[serde(default)]
    pub name: String,
    /// What it routes: every connection, or requests carrying these headers.
    #[serde(default)]
    pub filter: Filter,
    /// Milliseconds since it attached.
    #[serde(default)]
    pub attached_ms: u64,
}

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
        let mut header = &buf[..HEADER_LEN];
        let kind = header.get_u8();
        let id = header.get_u32();
        let len = header.get_u32() as usize;
        if len > MAX_PAYLOAD {
            return Err(TunnelError::Protocol(format!(
                "frame of {len} bytes exceeds {MAX_PAYLOAD}"
            )));
        }
        if buf.len() < HEADER_LEN + len {
            return Ok(None);
        }
        let payload = &buf[HEADER_LEN..HEADER_LEN + len];
        let frame = parse(kind, id, payload)?;
        Ok(Some((frame, HEADER_LEN + len)))
    }

    /// Reads one frame; `Ok(None)` at a clean end of stream between frames. Unknown kinds
    /// are skipped, as the compatibility rules say.
    pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Frame>, TunnelError> {
        loop {
            let mut header = [0u8; HEADER_LEN];
            match r.read_exact(&mut header).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(e.into()),
            }
            let mut h = &header[..];
            let kind = h.get_u8();
            let id = h.get_u32();
            let len = h.get_u32() as usize;
            if len > MAX_PAYLOAD {
                return Err(TunnelError::Protocol(format!(
                    "frame of {len} bytes exceeds {MAX_PAYLOAD}"
                )));
            }
            let mut payload = vec![0u8; len];
            r.read_exact(&mut payload).await?;
            if let Some(frame) = parse(kind, id, &payload)? {
                return Ok(Some(frame));
            }
        }
    }
}

fn parse(kind: u8, id: u32, payload: &[u8]) -> Result<Option<Frame>, TunnelError> {
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
            // A peer of another version may say things this one cannot read; the version
            // check reports that better than a JSON error would.
            let meta = serde_json::from_slice(&payload[6..]).unwrap_or_default();
            Frame::Hello { version, meta }
        }
        kind::OPEN => Frame::Open {
            id,
            target: text(payload)?,
        },
        kind::DATA => Frame::Data {
            id,
            data: Bytes::copy_from_slice(payload),
        },
        kind::WINDOW => Frame::Window {
            id,
            credit: u32_of(payload)?,
        },
        kind::EOF => Frame::Eof { id },
        kind::RESET => Frame::Reset { id },
        kind::PING => Frame::Ping {
            nonce: u64_of(payload)?,
        },
        kind::PONG => Frame::Pong {
            nonce: u64_of(payload)?,
        },
        kind::GOAWAY => Frame::GoAway {
            reason: text(payload)?,
        },
        _ => return Ok(None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn header_flags_parse_into_filters() {
        assert_eq!(
            Filter::parse_header("X-Dev=alice"),
            Some(("x-dev".into(), "alice".into()))
        );
        assert_eq!(
            Filter::parse_header("x=a=b"),
            Some(("x".into(), "a=b".into()))
        );
        assert_eq!(Filter::parse_header("novalue"), None);
        assert_eq!(Filter::parse_header("bad name=v"), None);
        assert_eq!(Filter::parse_header("=v"), None);
    }
}

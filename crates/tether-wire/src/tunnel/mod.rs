//! The laptop↔agent wire protocol: many TCP connections multiplexed over one byte stream
//! (in practice the API server's port-forward stream to the agent's control port).
//!
//! Layout:
//! - this file: the byte layout, [`VERSION`], the bounds and the compatibility rules.
//! - [`frame`]: the frames and their codec.
//! - [`meta`]: what a Hello says ([`HelloMeta`]) and what the agent reports ([`LaptopInfo`]).
//! - [`session`]: a [`Session`] drives one byte stream: the hello handshake, streams with
//!   per-stream flow control, the bounds below, heartbeats.
//! - [`target`]: what a laptop may open on a connect agent, and the agent's first line.
//! - [`heartbeat`]: the heartbeat's settings and the round-trip estimate its deadline
//!   follows.
//! - `error`: [`TunnelError`].
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
//! | 1    | Open   | new id    | UTF-8 target (from an agent: `port:N`, the agent port) |
//! | 2    | Data   | id        | bytes, never more than the receiver's credit        |
//! | 3    | Window | id        | u32 BE: bytes the receiver consumed (credit back)    |
//! | 4    | Eof    | id        | none: the sender will write no more on this stream   |
//! | 5    | Reset  | id        | none: the stream is aborted in both directions       |
//! | 6    | Ping   | 0         | u64 BE nonce                                        |
//! | 7    | Pong   | 0         | the nonce of the newest Ping received               |
//! | 8    | GoAway | 0         | UTF-8 reason; the sender closes the session next     |
//!
//! The dialling side (the laptop) sends Hello first. The accepting side (the agent) reads
//! it before it says anything: a Hello that does not parse (wrong magic, JSON that is not a
//! [`HelloMeta`]) or that may not attach (a wrong or missing token, a route another laptop
//! holds) is answered with GoAway alone and the stream is closed; otherwise it answers
//! with its own Hello. The side that dialled opens odd stream ids, the side that accepted
//! even ones, so both may open streams without agreeing first. Every stream starts with
//! [`WINDOW`] bytes of credit in each direction; a sender waits for Window frames before
//! it sends more, so one slow connection never stalls the others or grows memory.
//! A receiver may return credit in batches (this version: every quarter window), so a
//! request/response exchange costs one write each way.
//!
//! # Heartbeat
//! A side that has written nothing for [`Heartbeat::interval`] sends a Ping whose nonce is
//! its clock in microseconds; the peer answers with a Pong carrying the newest nonce it has
//! read (coalesced: a flood of pings costs one pong per write). The round trips give a
//! smoothed RTT, and a side declares the peer gone after
//! `clamp(4 × smoothed RTT + interval, floor, limit)` without any frame from it (see
//! [`Heartbeat`]). On a normal link the floor (800 ms) rules, so with the 200 ms interval a
//! vanished laptop loses its traffic within one second; a link with 300 ms round trips
//! gets 1.4 s, so a stall of a few round trips (a TCP retransmission) does not flap.
//! Time during which this side's own heartbeat ran late (its process starved of CPU, as a
//! throttled pod is) does not count as the peer's silence: its reader was starved too.
//!
//! # Bounds
//! A peer that breaks these gets GoAway `protocol error: …` and the session closes:
//! - Data beyond the credit it was given on a stream, Data after its own Eof, a Window that
//!   returns more credit than was used, and any frame for a stream id that was never
//!   opened (frames for a stream this side already closed are dropped: they were in flight).
//! - An Open with id 0, with this side's parity, or of an id already open.
//! - More than [`Limits::max_streams`] streams it opened at once, or opens faster than
//!   [`Limits::opens_per_second`] (after a burst of `max_streams`).
//! - Not reading: more than [`Limits::max_queued`] control frames waiting to be written.
//!
//! - This side opens at most the default `max_streams` streams at once itself (an open
//!   past that fails, and the agent sends that connection to the app), so it never breaks
//!   its peer's bound.
//!
//! So a session holds at most `max_streams × (WINDOW + 2 × 64 KiB)` of the peer's bytes
//! (384 MiB at the default 1024 streams; an agent allows its laptop far fewer streams,
//! since a laptop opens only short queries), plus its own streams, which its own callers
//! bound.
//!
//! # Compatibility rules
//! - A session runs only when both Hellos carry the same [`VERSION`]; otherwise the side
//!   that notices sends its Hello and a GoAway naming both versions, and closes. The laptop
//!   installs the agent from its own binary, so a mismatch means "another tether installed
//!   this agent": the laptop then replaces the agent image.
//! - A frame kind this version does not know is skipped (its payload read and dropped):
//!   optional new frames can be added without a version bump.
//! - Unknown fields in the Hello JSON are ignored and missing ones take their defaults:
//!   optional new settings can be added without a version bump. JSON that is not an object
//!   of the known fields' types is refused.
//! - Pong was reserved in the first release of version 1 and is now sent in answer to Ping.
//!   A peer that never answers is still judged by its own pings: the deadline is then the
//!   floor, as it always was.
//! - Anything else (a changed layout, a changed meaning, a new required frame, a different
//!   [`WINDOW`]) bumps [`VERSION`].

mod error;
pub mod frame;
pub mod heartbeat;
pub mod meta;
pub mod session;
pub mod target;

pub use self::{
    error::TunnelError,
    frame::Frame,
    heartbeat::Heartbeat,
    meta::{Filter, HelloMeta, LAPTOPS_TARGET, LaptopInfo, Role, traffic_port, traffic_target},
    session::{Handshake, Incoming, Limits, Opener, Session, Settings, Side},
};

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

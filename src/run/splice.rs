//! One connection CMD opened, joined to its far end: the stack's TCP socket as a tokio
//! stream, and the copy between it and the dialed [`Conn`] both ways.
//!
//! Flow control is the sockets' own: a read takes what smoltcp's receive buffer holds and
//! the window it frees is advertised at the next poll; a write puts into smoltcp's send
//! buffer only what fits and waits (on smoltcp's send waker) when it is full. The copy
//! holds one fixed buffer per direction, so a slow reader on either side stops the other
//! side's sender through TCP, and memory does not grow. EOF one way is a FIN the other way
//! (half-close); an error either way resets CMD's connection.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use smoltcp::{
    iface::SocketHandle,
    socket::tcp::{self, State},
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::shared::Shared;
use crate::connect::Conn;

/// The copy buffer of each direction: large enough to fill a 64 KiB segment of `tun0`'s MTU
/// in one write.
const COPY_BUFFER: usize = 64 * 1024;

/// CMD's side of a connection: a smoltcp TCP socket that completed (or is completing) its
/// handshake with CMD.
pub(crate) struct TcpStream {
    shared: Arc<Shared>,
    handle: SocketHandle,
    /// We sent our FIN: a socket that then reaches CLOSED ended normally.
    shut_down: bool,
}

impl TcpStream {
    pub(crate) fn new(shared: Arc<Shared>, handle: SocketHandle) -> Self {
        Self {
            shared,
            handle,
            shut_down: false,
        }
    }

    /// Resets CMD's connection (its next read or write fails with ECONNRESET).
    pub(crate) fn abort(&mut self) {
        self.shared
            .lock()
            .set
            .get_mut::<tcp::Socket>(self.handle)
            .abort();
        self.shared.wake_stack();
    }

    fn reset() -> io::Error {
        io::Error::from(io::ErrorKind::ConnectionReset)
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        self.shared.lock().released.push(self.handle);
        self.shared.wake_stack();
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut sockets = this.shared.lock();
        let socket = sockets.set.get_mut::<tcp::Socket>(this.handle);
        if socket.can_recv() {
            return match socket.recv_slice(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    drop(sockets);
                    // The window opened: the stack tells CMD at its next poll.
                    this.shared.wake_stack();
                    Poll::Ready(Ok(()))
                }
                Err(tcp::RecvError::Finished) => Poll::Ready(Ok(())),
                Err(tcp::RecvError::InvalidState) => Poll::Ready(Err(Self::reset())),
            };
        }
        match socket.state() {
            State::SynReceived
            | State::SynSent
            | State::Established
            | State::FinWait1
            | State::FinWait2 => {
                socket.register_recv_waker(cx.waker());
                Poll::Pending
            }
            // CMD sent its FIN: EOF.
            State::CloseWait | State::LastAck | State::Closing | State::TimeWait => {
                Poll::Ready(Ok(()))
            }
            // After our FIN, CLOSED follows CMD's FIN and ACK; otherwise it follows a reset
            // (a RST in SYN-RECEIVED sends a listening socket back to LISTEN).
            State::Closed if this.shut_down => Poll::Ready(Ok(())),
            State::Closed | State::Listen => Poll::Ready(Err(Self::reset())),
        }
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut sockets = this.shared.lock();
        let socket = sockets.set.get_mut::<tcp::Socket>(this.handle);
        if socket.can_send() {
            return match socket.send_slice(data) {
                Ok(n) => {
                    drop(sockets);
                    this.shared.wake_stack();
                    Poll::Ready(Ok(n))
                }
                Err(tcp::SendError::InvalidState) => Poll::Ready(Err(Self::reset())),
            };
        }
        match socket.state() {
            // The handshake is still going (CMD's, or ours towards a published port), or
            // the send buffer is full: wait for room.
            State::SynSent | State::SynReceived | State::Established | State::CloseWait => {
                socket.register_send_waker(cx.waker());
                Poll::Pending
            }
            _ if this.shut_down => Poll::Ready(Err(io::Error::from(io::ErrorKind::BrokenPipe))),
            _ => Poll::Ready(Err(Self::reset())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Data in smoltcp's send buffer goes out at the stack's next poll, which every
        // write asked for.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.shared
            .lock()
            .set
            .get_mut::<tcp::Socket>(this.handle)
            .close();
        this.shut_down = true;
        this.shared.wake_stack();
        Poll::Ready(Ok(()))
    }
}

/// Copies between CMD's connection and its far end until both directions ended; a failure
/// either way resets CMD's side (dropping `remote` closes the far end).
pub(crate) async fn splice(mut local: TcpStream, mut remote: Box<dyn Conn>) {
    let copied =
        tokio::io::copy_bidirectional_with_sizes(&mut local, &mut remote, COPY_BUFFER, COPY_BUFFER)
            .await;
    if let Err(e) = copied {
        tracing::debug!(error = %e, "a connection of the run namespace ended with an error");
        local.abort();
    }
}

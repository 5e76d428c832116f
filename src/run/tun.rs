//! The namespace's TUN device as tether holds it: non-blocking reads of whole IP packets
//! (one `read` is one packet with `IFF_NO_PI`), writes that drop rather than wait, and the
//! smoltcp [`Device`] the stack polls through.

use std::{
    collections::VecDeque,
    io,
    os::fd::{AsFd, OwnedFd},
};

use smoltcp::{
    phy::{self, Checksum, Device, DeviceCapabilities, Medium},
    time::Instant,
};
use tokio::io::{Interest, unix::AsyncFd};

pub(crate) struct Tun {
    fd: AsyncFd<OwnedFd>,
}

impl Tun {
    /// Takes the device the namespace setup handed over.
    pub(crate) fn new(fd: OwnedFd) -> io::Result<Self> {
        rustix::io::ioctl_fionbio(&fd, true)?;
        // SAFETY: the AsyncFd owns the OwnedFd, which stays open and the same until dropped.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?;
        Ok(Self { fd })
    }

    /// Reads the packets waiting on the device into `incoming`, at most `budget` so that
    /// the stack gets to answer between bursts; waits for the first one.
    pub(crate) async fn read_some(
        &self,
        scratch: &mut [u8],
        incoming: &mut Vec<Vec<u8>>,
        budget: usize,
    ) -> io::Result<()> {
        let mut guard = self.fd.readable().await?;
        for _ in 0..budget {
            match guard.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut *scratch)?)) {
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => incoming.push(scratch[..n].to_vec()),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => break,
            }
        }
        Ok(())
    }

    /// Writes one packet. A full device queue drops it, as a congested link would; TCP
    /// retransmits and DNS retries.
    pub(crate) fn write(&self, packet: &[u8]) {
        let _ = rustix::io::write(self.fd.get_ref().as_fd(), packet);
    }
}

/// The stack's view of the device for one poll: packets already read, and the device to
/// write replies to.
pub(crate) struct TunDevice<'a> {
    pub(crate) tun: &'a Tun,
    pub(crate) rx: &'a mut VecDeque<Vec<u8>>,
    pub(crate) tx_buf: &'a mut Vec<u8>,
    pub(crate) mtu: usize,
}

pub(crate) struct RxToken(Vec<u8>);

pub(crate) struct TxToken<'a> {
    tun: &'a Tun,
    buf: &'a mut Vec<u8>,
}

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        self.buf.clear();
        self.buf.resize(len, 0);
        let r = f(&mut self.buf[..]);
        self.tun.write(&self.buf[..]);
        r
    }
}

impl Device for TunDevice<'_> {
    type RxToken<'b>
        = RxToken
    where
        Self: 'b;
    type TxToken<'b>
        = TxToken<'b>
    where
        Self: 'b;

    fn receive(&mut self, _now: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let packet = self.rx.pop_front()?;
        Some((
            RxToken(packet),
            TxToken {
                tun: self.tun,
                buf: self.tx_buf,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<Self::TxToken<'_>> {
        Some(TxToken {
            tun: self.tun,
            buf: self.tx_buf,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.mtu;
        // What CMD's kernel writes to the TUN is checksummed (no offload is negotiated)
        // and crosses no wire: checking it again costs a pass over every byte uploaded.
        // What the stack sends is checksummed, since the kernel checks it.
        caps.checksum.ipv4 = Checksum::Tx;
        caps.checksum.tcp = Checksum::Tx;
        caps.checksum.udp = Checksum::Tx;
        caps
    }
}

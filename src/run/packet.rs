//! Raw IP packets as they come off `tun0`, before the stack sees them: which flow a TCP
//! segment belongs to and whether it opens one, and the refusals tether writes back itself
//! (a TCP reset, an ICMP "unreachable") when a dial fails.
//!
//! The stack holds a connection's first SYN until the dial to its destination answered, so
//! a refused dial reaches CMD as a refused connect (`ECONNREFUSED`), not as a connection
//! that opens and then resets. Linux ends a connect in SYN-SENT at the first ICMP
//! destination-unreachable, so unreachable destinations fail as fast (`EHOSTUNREACH`).

use std::net::{IpAddr, SocketAddr};

use smoltcp::{
    phy::ChecksumCapabilities,
    wire::{
        Icmpv4DstUnreachable, Icmpv4Packet, Icmpv4Repr, Icmpv6DstUnreachable, Icmpv6Packet,
        Icmpv6Repr, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, TcpControl,
        TcpPacket, TcpRepr, TcpSeqNumber,
    },
};

/// A TCP connection as CMD sees it: from its socket to the destination it dialed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

/// What a packet from `tun0` is, as far as the stack's dispatch cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingress {
    /// A SYN without ACK: CMD opens (or retries opening) `key`.
    Syn(FlowKey),
    /// Any other TCP segment.
    Tcp(FlowKey),
    /// UDP: the stack answers DNS and refuses the rest.
    Udp,
    /// ICMP, fragments, other protocols, garbage: dropped (ICMP is out of scope; no echo
    /// replies that would pretend a host answered).
    Drop,
}

/// Classifies one packet.
pub fn classify(packet: &[u8]) -> Ingress {
    let Some((src, dst, proto, payload)) = ip_parts(packet) else {
        return Ingress::Drop;
    };
    match proto {
        IpProtocol::Tcp => {
            let Ok(tcp) = TcpPacket::new_checked(payload) else {
                return Ingress::Drop;
            };
            let key = FlowKey {
                src: SocketAddr::new(src, tcp.src_port()),
                dst: SocketAddr::new(dst, tcp.dst_port()),
            };
            if tcp.syn() && !tcp.ack() && !tcp.rst() {
                Ingress::Syn(key)
            } else {
                Ingress::Tcp(key)
            }
        }
        IpProtocol::Udp => Ingress::Udp,
        _ => Ingress::Drop,
    }
}

/// Source, destination, protocol and payload of an unfragmented IPv4 or IPv6 packet
/// (IPv6 extension headers are not followed: CMD's kernel sends none on TCP or UDP).
fn ip_parts(packet: &[u8]) -> Option<(IpAddr, IpAddr, IpProtocol, &[u8])> {
    match packet.first()? >> 4 {
        4 => {
            let ip = Ipv4Packet::new_checked(packet).ok()?;
            if ip.more_frags() || ip.frag_offset() != 0 {
                return None;
            }
            let header = usize::from(ip.header_len());
            let total = usize::from(ip.total_len());
            Some((
                ip.src_addr().into(),
                ip.dst_addr().into(),
                ip.next_header(),
                packet.get(header..total)?,
            ))
        }
        6 => {
            let ip = Ipv6Packet::new_checked(packet).ok()?;
            let total = ip.header_len() + usize::from(ip.payload_len());
            Some((
                ip.src_addr().into(),
                ip.dst_addr().into(),
                ip.next_header(),
                packet.get(ip.header_len()..total)?,
            ))
        }
        _ => None,
    }
}

/// How a refused connection reaches CMD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A TCP reset: connect fails with "connection refused".
    Refused,
    /// ICMP host unreachable: "no route to host".
    HostUnreachable,
    /// ICMP network unreachable: "network is unreachable".
    NetUnreachable,
}

/// The packet that refuses `syn` (a SYN from CMD) in the way `how` says, sent from `router`
/// for the ICMP kinds (the stack's end of the link). `None` if `syn` is not a TCP segment.
pub fn refuse(syn: &[u8], how: Refusal, router: IpAddr) -> Option<Vec<u8>> {
    match how {
        Refusal::Refused => reset_for(syn),
        Refusal::HostUnreachable | Refusal::NetUnreachable => {
            unreachable_for(syn, how == Refusal::NetUnreachable, router)
        }
    }
}

/// A RST+ACK answering a SYN, as a closed port's kernel sends it.
fn reset_for(syn: &[u8]) -> Option<Vec<u8>> {
    let (src, dst, proto, payload) = ip_parts(syn)?;
    if proto != IpProtocol::Tcp {
        return None;
    }
    let tcp = TcpPacket::new_checked(payload).ok()?;
    // The SYN occupies one sequence number; its payload (TCP Fast Open) counts too.
    let seq_len = tcp.payload().len() + usize::from(tcp.syn()) + usize::from(tcp.fin());
    let repr = TcpRepr {
        src_port: tcp.dst_port(),
        dst_port: tcp.src_port(),
        control: TcpControl::Rst,
        seq_number: TcpSeqNumber(0),
        ack_number: Some(tcp.seq_number() + seq_len),
        window_len: 0,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    Some(ip_packet(
        dst,
        src,
        IpProtocol::Tcp,
        repr.buffer_len(),
        |buf, s, d| {
            repr.emit(
                &mut TcpPacket::new_unchecked(buf),
                &s,
                &d,
                &ChecksumCapabilities::default(),
            )
        },
    ))
}

/// An ICMP destination-unreachable quoting `packet`, from `router` to its sender.
fn unreachable_for(packet: &[u8], net: bool, router: IpAddr) -> Option<Vec<u8>> {
    match (packet.first()? >> 4, router) {
        (4, IpAddr::V4(router)) => {
            let ip = Ipv4Packet::new_checked(packet).ok()?;
            let header = Ipv4Repr::parse(&ip, &ChecksumCapabilities::ignored()).ok()?;
            // RFC 792 asks for the original header and 8 bytes of its payload, RFC 1812 for
            // as much as fits in 576 bytes: the whole SYN, which parsers that check the
            // quoted header's length (smoltcp's) accept too.
            let payload = ip.payload();
            if payload.len() < 8 {
                return None;
            }
            let quoted = &payload[..payload.len().min(576 - 20 - 8 - header.buffer_len())];
            let repr = Icmpv4Repr::DstUnreachable {
                reason: if net {
                    Icmpv4DstUnreachable::NetUnreachable
                } else {
                    Icmpv4DstUnreachable::HostUnreachable
                },
                header,
                data: quoted,
            };
            let to = header.src_addr;
            Some(ip_packet(
                IpAddr::V4(router),
                IpAddr::V4(to),
                IpProtocol::Icmp,
                repr.buffer_len(),
                |buf, _, _| {
                    repr.emit(
                        &mut Icmpv4Packet::new_unchecked(buf),
                        &ChecksumCapabilities::default(),
                    )
                },
            ))
        }
        (6, IpAddr::V6(router)) => {
            let ip = Ipv6Packet::new_checked(packet).ok()?;
            let header = Ipv6Repr::parse(&ip).ok()?;
            let repr = Icmpv6Repr::DstUnreachable {
                reason: if net {
                    Icmpv6DstUnreachable::NoRoute
                } else {
                    Icmpv6DstUnreachable::AddrUnreachable
                },
                header,
                data: ip.payload(),
            };
            let to = header.src_addr;
            // buffer_len caps the quote at the IPv6 minimum MTU, as RFC 4443 asks.
            Some(ip_packet(
                IpAddr::V6(router),
                IpAddr::V6(to),
                IpProtocol::Icmpv6,
                repr.buffer_len(),
                |buf, _, _| {
                    repr.emit(
                        &router,
                        &to,
                        &mut Icmpv6Packet::new_unchecked(buf),
                        &ChecksumCapabilities::default(),
                    )
                },
            ))
        }
        _ => None,
    }
}

/// An IP packet from `src` to `dst` whose payload of `len` bytes `fill` writes (given the
/// addresses, for pseudo-header checksums).
fn ip_packet(
    src: IpAddr,
    dst: IpAddr,
    proto: IpProtocol,
    len: usize,
    fill: impl FnOnce(&mut [u8], IpAddress, IpAddress),
) -> Vec<u8> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let repr = Ipv4Repr {
                src_addr: s,
                dst_addr: d,
                next_header: proto,
                payload_len: len,
                hop_limit: 64,
            };
            let mut buf = vec![0u8; repr.buffer_len() + len];
            let mut packet = Ipv4Packet::new_unchecked(&mut buf[..]);
            repr.emit(&mut packet, &ChecksumCapabilities::default());
            fill(packet.payload_mut(), s.into(), d.into());
            buf
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let repr = Ipv6Repr {
                src_addr: s,
                dst_addr: d,
                next_header: proto,
                payload_len: len,
                hop_limit: 64,
            };
            let mut buf = vec![0u8; repr.buffer_len() + len];
            let mut packet = Ipv6Packet::new_unchecked(&mut buf[..]);
            repr.emit(&mut packet);
            fill(packet.payload_mut(), s.into(), d.into());
            buf
        }
        // A flow's two ends share a family; mixed ones never reach here.
        _ => Vec::new(),
    }
}

/// A SYN from `src` to `dst` with sequence number 1000, built with smoltcp's encoder.
#[cfg(test)]
pub(crate) fn syn(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: src.port(),
        dst_port: dst.port(),
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(1000),
        ack_number: None,
        window_len: 64240,
        window_scale: Some(7),
        max_seg_size: Some(1460),
        sack_permitted: true,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    ip_packet(
        src.ip(),
        dst.ip(),
        IpProtocol::Tcp,
        repr.buffer_len(),
        |buf, s, d| {
            repr.emit(
                &mut TcpPacket::new_unchecked(buf),
                &s,
                &d,
                &ChecksumCapabilities::default(),
            )
        },
    )
}

/// The TCP segment in `packet`: source, destination, flags (SYN, ACK, RST) and ack number.
#[cfg(test)]
pub(crate) fn tcp_summary(packet: &[u8]) -> Option<(SocketAddr, SocketAddr, [bool; 3], u32)> {
    let (src, dst, proto, payload) = ip_parts(packet)?;
    if proto != IpProtocol::Tcp {
        return None;
    }
    let tcp = TcpPacket::new_checked(payload).ok()?;
    Some((
        SocketAddr::new(src, tcp.src_port()),
        SocketAddr::new(dst, tcp.dst_port()),
        [tcp.syn(), tcp.ack(), tcp.rst()],
        tcp.ack_number().0 as u32,
    ))
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn v4(a: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::from(a), port))
    }

    #[test]
    fn a_syn_opens_a_flow_and_other_segments_belong_to_one() {
        let key = FlowKey {
            src: v4([169, 254, 77, 2], 40000),
            dst: v4([198, 18, 0, 7], 8080),
        };
        assert_eq!(classify(&syn(key.src, key.dst)), Ingress::Syn(key));
        let rst = reset_for(&syn(key.dst, key.src)).unwrap();
        assert_eq!(classify(&rst), Ingress::Tcp(key));
        assert_eq!(classify(&[]), Ingress::Drop);
        assert_eq!(classify(&[0x45, 0, 0]), Ingress::Drop);
    }

    #[test]
    fn the_reset_acknowledges_the_syn_with_valid_checksums() {
        let src = v4([169, 254, 77, 2], 40000);
        let dst = v4([198, 18, 0, 7], 8080);
        let rst = refuse(&syn(src, dst), Refusal::Refused, dst.ip()).unwrap();
        let ip = Ipv4Packet::new_checked(&rst[..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(IpAddr::from(ip.src_addr()), dst.ip());
        assert_eq!(IpAddr::from(ip.dst_addr()), src.ip());
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(tcp.verify_checksum(&ip.src_addr().into(), &ip.dst_addr().into()));
        assert!(tcp.rst() && tcp.ack() && !tcp.syn());
        assert_eq!(tcp.ack_number(), TcpSeqNumber(1001));
        assert_eq!((tcp.src_port(), tcp.dst_port()), (8080, 40000));
    }

    #[test]
    fn unreachable_quotes_the_syn_from_the_router() {
        let src = v4([169, 254, 77, 2], 40000);
        let dst = v4([198, 18, 0, 9], 5432);
        let router = IpAddr::V4(Ipv4Addr::new(169, 254, 77, 1));
        let packet = syn(src, dst);
        let icmp = refuse(&packet, Refusal::HostUnreachable, router).unwrap();
        let ip = Ipv4Packet::new_checked(&icmp[..]).unwrap();
        assert_eq!(IpAddr::from(ip.src_addr()), router);
        assert_eq!(ip.next_header(), IpProtocol::Icmp);
        let msg = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        assert!(msg.verify_checksum());
        match Icmpv4Repr::parse(&msg, &ChecksumCapabilities::default()).unwrap() {
            Icmpv4Repr::DstUnreachable { reason, header, .. } => {
                assert_eq!(reason, Icmpv4DstUnreachable::HostUnreachable);
                assert_eq!(IpAddr::from(header.dst_addr), dst.ip());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ipv6_flows_and_refusals_work_alike() {
        let src = SocketAddr::from((
            Ipv6Addr::new(0xfd74, 0x6574, 0x6865, 0x72, 0, 0, 0, 2),
            40000,
        ));
        let dst = SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7), 443));
        let router = IpAddr::V6(Ipv6Addr::new(0xfd74, 0x6574, 0x6865, 0x72, 0, 0, 0, 1));
        let packet = syn(src, dst);
        assert_eq!(classify(&packet), Ingress::Syn(FlowKey { src, dst }));
        let rst = refuse(&packet, Refusal::Refused, router).unwrap();
        assert_eq!(classify(&rst), Ingress::Tcp(FlowKey { src: dst, dst: src }));
        let icmp = refuse(&packet, Refusal::NetUnreachable, router).unwrap();
        let ip = Ipv6Packet::new_checked(&icmp[..]).unwrap();
        assert_eq!(ip.next_header(), IpProtocol::Icmpv6);
        let msg = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert!(msg.verify_checksum(&ip.src_addr(), &ip.dst_addr()));
    }
}

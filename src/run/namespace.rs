//! The child side of `tether run`: between `fork` and `exec` of CMD, make the namespaces CMD
//! lives in and hand the TUN device to tether.
//!
//! The setup runs as a `pre_exec` hook of [`std::process::Command`], in the forked child of
//! a multithreaded process, so it may only make system calls: everything it needs (paths as
//! C strings, the id maps, the addresses) is prepared by [`ChildSetup::new`] before the fork,
//! and the hook allocates nothing. A hook rather than a re-exec of tether as a hidden
//! subcommand keeps `run` usable from any binary (tests included) and needs no second
//! command line to keep in step; the cost, async-signal-safety, is paid once in this file.
//!
//! In order, in the child:
//! 1. `PR_SET_PDEATHSIG`=SIGKILL, so CMD dies with tether (the thread that forks waits for
//!    CMD, so it lives exactly as long as CMD needs it to).
//! 2. `unshare` a network and a mount namespace, with a user namespace first unless tether
//!    runs as root; the caller's uid and gid are mapped to themselves (see [`ChildSetup`]).
//! 3. Mounts become downstream of the laptop's (`MS_SLAVE`, recursively), so nothing
//!    mounted here propagates back.
//! 4. `lo` up; `tun0` created (`IFF_TUN | IFF_NO_PI`), its MTU, address, netmask, up, and a
//!    default route through it; the same for IPv6 when the kernel has it (best effort).
//! 5. resolv.conf bind-mounted over `/etc/resolv.conf` and its file's name removed from the
//!    laptop's temp dir; resolver sockets that would bypass it hidden under `/dev/null`
//!    (see [`plan::RESOLVER_SOCKETS`](super::plan::RESOLVER_SOCKETS)).
//! 6. The TUN fd sent to tether over a `SOCK_SEQPACKET` socketpair (`SCM_RIGHTS`), or the
//!    step that failed and its errno; the child's copy is close-on-exec, so CMD never holds
//!    it and the device dies with tether's copy.

use std::{
    ffi::CString,
    io::{self, IoSlice, IoSliceMut},
    mem::{self, MaybeUninit},
    net::{Ipv4Addr, Ipv6Addr},
    os::{
        fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd},
        unix::{ffi::OsStrExt, process::CommandExt},
    },
    path::Path,
    process::Command,
};

use rustix::{
    fs::{self, Mode, OFlags},
    io::Errno,
    mount::{self, MountPropagationFlags},
    net::{
        self, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags,
        SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
    },
    process::{self, Pid, Signal},
    thread::UnshareFlags,
};

use super::{
    error::{NamespaceError, Step},
    plan::{self, Addresses},
};

/// The uid and gid maps of the user namespace, as the bytes written to `/proc/self/*_map`.
///
/// The caller is mapped to itself, not to root: CMD sees the uid it has outside (`id`,
/// `$USER`, file owners agree), programs that refuse to run as root (postgres, some
/// installers) run, and since a non-root uid loses its capabilities at `exec`, CMD cannot
/// reconfigure `tun0` or unmount the resolv.conf bind. Mapping to 0 would give CMD all of
/// them inside its namespace for no benefit to a client.
#[derive(Debug, Clone)]
pub(crate) struct IdMaps {
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
}

impl IdMaps {
    /// The maps of the calling process's effective ids.
    pub(crate) fn of_caller() -> Self {
        Self {
            uid_map: plan::id_map(process::geteuid().as_raw()).into_bytes(),
            gid_map: plan::id_map(process::getegid().as_raw()).into_bytes(),
        }
    }
}

/// Everything the child does, prepared before the fork.
#[derive(Debug)]
pub(crate) struct ChildSetup {
    /// `None` when no user namespace is made (tether is root, see
    /// [`UserNamespace`](super::command::UserNamespace)).
    user_ns: Option<IdMaps>,
    /// tether's pid: if the child's parent is already another process when the death signal
    /// is armed, tether died in between and the child must not go on.
    parent: Pid,
    addrs: Addresses,
    tun_name: [libc::c_char; libc::IFNAMSIZ],
    /// The file holding the namespace's resolv.conf (bound over `/etc/resolv.conf`).
    resolv_source: CString,
    /// Resolver sockets present on the laptop, hidden inside.
    hide: Vec<CString>,
}

/// Why a step of the setup failed, as the child reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) step: Step,
    pub(crate) errno: Errno,
}

/// What the child said over the socketpair.
#[derive(Debug)]
pub(crate) enum Report {
    /// The namespace is ready: here is its TUN device.
    Ready {
        tun: OwnedFd,
        ipv6: bool,
    },
    Failed(Failure),
}

const REPORT_READY: u8 = 0;
const REPORT_FAILED: u8 = 1;

/// The bind source of `/etc/resolv.conf` as a C string.
fn c_path(path: &Path) -> Result<CString, NamespaceError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| NamespaceError::NulInPath(path.into()))
}

impl ChildSetup {
    /// Prepares the setup: a user namespace if `user_ns`, `resolv_source` bound over
    /// `/etc/resolv.conf`, the resolver sockets that exist hidden.
    pub(crate) fn new(
        user_ns: bool,
        addrs: Addresses,
        resolv_source: &Path,
    ) -> Result<Self, NamespaceError> {
        let mut tun_name = [0 as libc::c_char; libc::IFNAMSIZ];
        for (dst, src) in tun_name.iter_mut().zip(plan::TUN_NAME.bytes()) {
            *dst = src as libc::c_char;
        }
        let hide = plan::RESOLVER_SOCKETS
            .iter()
            .map(Path::new)
            .filter(|p| p.exists())
            .map(c_path)
            .collect::<Result<_, _>>()?;
        Ok(Self {
            user_ns: user_ns.then(IdMaps::of_caller),
            parent: process::getpid(),
            addrs,
            tun_name,
            resolv_source: c_path(resolv_source)?,
            hide,
        })
    }

    /// Makes the setup `cmd`'s `pre_exec` hook, reporting on `report` (the child's end of
    /// [`report_pair`]).
    pub(crate) fn install(self, cmd: &mut Command, report: OwnedFd) {
        // SAFETY: the hook runs in the forked child before exec. It only makes system calls
        // (rustix's raw syscalls, libc's ioctl) on data prepared before the fork, allocates
        // nothing, and takes no lock, so the state other threads left behind at the fork
        // (allocator, stdio locks) is never touched.
        unsafe {
            cmd.pre_exec(move || match self.setup() {
                Ok((tun, ipv6)) => {
                    send_ready(report.as_fd(), tun.as_fd(), ipv6)
                        .map_err(|e| io::Error::from_raw_os_error(e.raw_os_error()))?;
                    // The child's copy goes now: CMD must never hold the device.
                    drop(tun);
                    Ok(())
                }
                Err(failure) => {
                    // Best effort: if even the report cannot be sent, the spawn error alone
                    // (the errno) reaches tether.
                    let _ = send_failed(report.as_fd(), failure);
                    Err(io::Error::from_raw_os_error(failure.errno.raw_os_error()))
                }
            })
        };
    }

    /// The steps, in the child. Returns the TUN device and whether IPv6 was configured.
    fn setup(&self) -> Result<(OwnedFd, bool), Failure> {
        let at = |step| move |errno| Failure { step, errno };

        process::set_parent_process_death_signal(Some(Signal::KILL))
            .map_err(at(Step::DeathSignal))?;
        if process::getppid() != Some(self.parent) {
            return Err(Failure {
                step: Step::DeathSignal,
                errno: Errno::SRCH,
            });
        }

        let mut flags = UnshareFlags::NEWNET | UnshareFlags::NEWNS;
        if self.user_ns.is_some() {
            flags |= UnshareFlags::NEWUSER;
        }
        // SAFETY: no CLONE_FILES; the process is single-threaded after the fork anyway.
        unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(at(Step::Unshare))?;
        if let Some(maps) = &self.user_ns {
            write_file(c"/proc/self/setgroups", b"deny").map_err(at(Step::SetGroups))?;
            write_file(c"/proc/self/uid_map", &maps.uid_map).map_err(at(Step::UidMap))?;
            write_file(c"/proc/self/gid_map", &maps.gid_map).map_err(at(Step::GidMap))?;
        }

        mount::mount_change(
            c"/",
            MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
        )
        .map_err(at(Step::MountPrivate))?;

        let inet = net::socket_with(
            AddressFamily::INET,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(at(Step::Loopback))?;
        let mut lo = [0 as libc::c_char; libc::IFNAMSIZ];
        lo[..2].copy_from_slice(&[b'l' as libc::c_char, b'o' as libc::c_char]);
        set_up(inet.as_fd(), &lo).map_err(at(Step::Loopback))?;

        let tun = fs::open(
            c"/dev/net/tun",
            OFlags::RDWR | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )
        .map_err(at(Step::OpenTun))?;
        let mut ifr = self.ifreq();
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        ioctl(tun.as_fd(), libc::TUNSETIFF, &mut ifr).map_err(at(Step::CreateTun))?;

        self.configure_v4(inet.as_fd())
            .map_err(at(Step::ConfigureTun))?;
        let ipv6 = self.configure_v6(inet.as_fd()).is_ok();

        mount::mount_bind(self.resolv_source.as_c_str(), c"/etc/resolv.conf")
            .map_err(at(Step::BindResolvConf))?;
        // The mount holds the file now; its name goes at once, from here, so that not even
        // a tether killed before it hears back leaves it on the laptop (tether removes it
        // too, for the paths where the child never gets this far).
        let _ = fs::unlink(self.resolv_source.as_c_str());
        for path in &self.hide {
            // Best effort: a socket we fail to hide only means glibc may ask it first.
            let _ = mount::mount_bind(c"/dev/null", path.as_c_str());
        }
        Ok((tun, ipv6))
    }

    fn ifreq(&self) -> libc::ifreq {
        // SAFETY: ifreq is plain old data; all zeroes is a valid (empty) request.
        let mut ifr: libc::ifreq = unsafe { mem::zeroed() };
        ifr.ifr_name = self.tun_name;
        ifr
    }

    /// MTU, address, netmask, up, default route.
    fn configure_v4(&self, inet: BorrowedFd<'_>) -> Result<(), Errno> {
        let mut ifr = self.ifreq();
        ifr.ifr_ifru.ifru_mtu = plan::MTU as libc::c_int;
        ioctl(inet, libc::SIOCSIFMTU, &mut ifr)?;

        let mut ifr = self.ifreq();
        ifr.ifr_ifru.ifru_addr = sockaddr_v4(self.addrs.ns_v4);
        ioctl(inet, libc::SIOCSIFADDR, &mut ifr)?;

        let mut ifr = self.ifreq();
        ifr.ifr_ifru.ifru_netmask = sockaddr_v4(self.addrs.netmask_v4());
        ioctl(inet, libc::SIOCSIFNETMASK, &mut ifr)?;

        set_up(inet, &self.tun_name)?;

        // `default dev tun0`: every destination goes to the stack.
        // SAFETY: rtentry is plain old data; zeroes are "unset".
        let mut rt: RtEntry = unsafe { mem::zeroed() };
        rt.rt_dst = sockaddr_v4(Ipv4Addr::UNSPECIFIED);
        rt.rt_genmask = sockaddr_v4(Ipv4Addr::UNSPECIFIED);
        rt.rt_flags = libc::RTF_UP;
        rt.rt_dev = self.tun_name.as_ptr().cast_mut();
        ioctl(inet, libc::SIOCADDRT, &mut rt)
    }

    /// Address and default route over IPv6; fails where the kernel has no IPv6.
    fn configure_v6(&self, inet: BorrowedFd<'_>) -> Result<(), Errno> {
        let inet6 = net::socket_with(
            AddressFamily::INET6,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            None,
        )?;
        let mut ifr = self.ifreq();
        ioctl(inet, libc::SIOCGIFINDEX, &mut ifr)?;
        // SAFETY: the kernel filled the ifindex member of the union.
        let ifindex = unsafe { ifr.ifr_ifru.ifru_ifindex };

        let mut req = libc::in6_ifreq {
            ifr6_addr: in6_addr(self.addrs.ns_v6),
            ifr6_prefixlen: u32::from(self.addrs.prefix_v6),
            ifr6_ifindex: ifindex,
        };
        ioctl(inet6.as_fd(), libc::SIOCSIFADDR, &mut req)?;

        let mut rt = In6RtMsg {
            rtmsg_dst: in6_addr(Ipv6Addr::UNSPECIFIED),
            rtmsg_src: in6_addr(Ipv6Addr::UNSPECIFIED),
            rtmsg_gateway: in6_addr(Ipv6Addr::UNSPECIFIED),
            rtmsg_type: 0,
            rtmsg_dst_len: 0,
            rtmsg_src_len: 0,
            rtmsg_metric: 1,
            rtmsg_info: 0,
            rtmsg_flags: u32::from(libc::RTF_UP),
            rtmsg_ifindex: ifindex,
        };
        ioctl(inet6.as_fd(), libc::SIOCADDRT, &mut rt)
    }
}

/// `struct rtentry` of `<linux/route.h>` (libc has it for musl only).
#[repr(C)]
struct RtEntry {
    rt_pad1: libc::c_ulong,
    rt_dst: libc::sockaddr,
    rt_gateway: libc::sockaddr,
    rt_genmask: libc::sockaddr,
    rt_flags: libc::c_ushort,
    rt_pad2: libc::c_short,
    rt_pad3: libc::c_ulong,
    rt_pad4: *mut libc::c_void,
    rt_metric: libc::c_short,
    rt_dev: *mut libc::c_char,
    rt_mtu: libc::c_ulong,
    rt_window: libc::c_ulong,
    rt_irtt: libc::c_ushort,
}

/// `struct in6_rtmsg` of `<linux/ipv6_route.h>` (libc's fields are private).
#[repr(C)]
struct In6RtMsg {
    rtmsg_dst: libc::in6_addr,
    rtmsg_src: libc::in6_addr,
    rtmsg_gateway: libc::in6_addr,
    rtmsg_type: u32,
    rtmsg_dst_len: u16,
    rtmsg_src_len: u16,
    rtmsg_metric: u32,
    rtmsg_info: libc::c_ulong,
    rtmsg_flags: u32,
    rtmsg_ifindex: libc::c_int,
}

fn sockaddr_v4(ip: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr are both 16 bytes; the kernel reads the family
    // first, as every caller of these ioctls does.
    unsafe { mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn in6_addr(ip: Ipv6Addr) -> libc::in6_addr {
    libc::in6_addr {
        s6_addr: ip.octets(),
    }
}

/// `ioctl(fd, request, arg)`, the errno on failure.
fn ioctl<T>(fd: BorrowedFd<'_>, request: libc::c_ulong, arg: &mut T) -> Result<(), Errno> {
    // SAFETY: every caller passes the struct its request expects, valid for the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), request, arg as *mut T) };
    if r < 0 {
        // SAFETY: errno is thread-local and was just set by the failed call.
        Err(Errno::from_raw_os_error(unsafe {
            *libc::__errno_location()
        }))
    } else {
        Ok(())
    }
}

/// Sets `IFF_UP | IFF_RUNNING` on interface `name`.
fn set_up(inet: BorrowedFd<'_>, name: &[libc::c_char; libc::IFNAMSIZ]) -> Result<(), Errno> {
    // SAFETY: plain old data.
    let mut ifr: libc::ifreq = unsafe { mem::zeroed() };
    ifr.ifr_name = *name;
    ioctl(inet, libc::SIOCGIFFLAGS, &mut ifr)?;
    // SAFETY: SIOCGIFFLAGS filled the flags member.
    unsafe { ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    ioctl(inet, libc::SIOCSIFFLAGS, &mut ifr)
}

fn write_file(path: &std::ffi::CStr, bytes: &[u8]) -> Result<(), Errno> {
    let fd = fs::open(path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())?;
    let n = rustix::io::write(&fd, bytes)?;
    if n == bytes.len() {
        Ok(())
    } else {
        Err(Errno::IO)
    }
}

fn send_ready(report: BorrowedFd<'_>, tun: BorrowedFd<'_>, ipv6: bool) -> Result<(), Errno> {
    let payload = [REPORT_READY, u8::from(ipv6)];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [tun];
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(Errno::NOBUFS);
    }
    net::sendmsg(
        report,
        &[IoSlice::new(&payload)],
        &mut control,
        SendFlags::empty(),
    )?;
    Ok(())
}

fn send_failed(report: BorrowedFd<'_>, failure: Failure) -> Result<(), Errno> {
    let errno = failure.errno.raw_os_error().to_le_bytes();
    let payload = [
        REPORT_FAILED,
        failure.step as u8,
        errno[0],
        errno[1],
        errno[2],
        errno[3],
    ];
    net::sendmsg(
        report,
        &[IoSlice::new(&payload)],
        &mut SendAncillaryBuffer::default(),
        SendFlags::empty(),
    )?;
    Ok(())
}

/// The two ends of the report channel: tether's and the child's (both close-on-exec).
pub(crate) fn report_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Reads the child's report without waiting: by the time the spawn returned the child has
/// exec'd or failed, so whatever it sent is queued. `None`: it sent nothing (it died first).
pub(crate) fn read_report(ours: BorrowedFd<'_>) -> io::Result<Option<Report>> {
    let mut payload = [0u8; 16];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = match net::recvmsg(
        ours,
        &mut [IoSliceMut::new(&mut payload)],
        &mut control,
        RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
    ) {
        Ok(msg) => msg,
        Err(Errno::AGAIN) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut tun = None;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            for fd in fds {
                tun.get_or_insert(fd);
            }
        }
    }
    let payload = &payload[..msg.bytes];
    Ok(decode_report(payload, tun))
}

fn decode_report(payload: &[u8], tun: Option<OwnedFd>) -> Option<Report> {
    match payload {
        [REPORT_READY, ipv6] => tun.map(|tun| Report::Ready {
            tun,
            ipv6: *ipv6 != 0,
        }),
        [REPORT_FAILED, step, e0, e1, e2, e3] => Some(Report::Failed(Failure {
            step: Step::from_u8(*step)?,
            errno: Errno::from_raw_os_error(i32::from_le_bytes([*e0, *e1, *e2, *e3])),
        })),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_report_round_trips_through_the_socketpair() {
        let (ours, theirs) = report_pair().unwrap();
        let failure = Failure {
            step: Step::OpenTun,
            errno: Errno::NOENT,
        };
        send_failed(theirs.as_fd(), failure).unwrap();
        match read_report(ours.as_fd()).unwrap() {
            Some(Report::Failed(f)) => assert_eq!(f, failure),
            other => panic!("unexpected report {other:?}"),
        }
        assert!(read_report(ours.as_fd()).unwrap().is_none());
    }

    #[test]
    fn a_ready_report_carries_the_fd() {
        let (ours, theirs) = report_pair().unwrap();
        let (file, _keep) = report_pair().unwrap();
        send_ready(theirs.as_fd(), file.as_fd(), true).unwrap();
        match read_report(ours.as_fd()).unwrap() {
            Some(Report::Ready { tun, ipv6 }) => {
                assert!(ipv6);
                assert_ne!(tun.as_raw_fd(), file.as_raw_fd());
            }
            other => panic!("unexpected report {other:?}"),
        }
    }

    #[test]
    fn the_route_structs_have_the_kernels_sizes() {
        assert_eq!(mem::size_of::<RtEntry>(), 120);
        assert_eq!(mem::size_of::<In6RtMsg>(), 80);
    }
}

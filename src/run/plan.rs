//! The addresses of a `tether run` namespace and the resolv.conf it sees, decided before
//! anything is created: pure functions of the laptop's resolv.conf, so they are unit-tested
//! and the namespace setup only applies them.
//!
//! The namespace's `tun0` is the point-to-point link to tether's userspace stack. Its
//! addresses are link-local (IPv4) and unique-local (IPv6) on purpose: every destination is
//! routed through `tun0` whatever its address, so the only addresses CMD cannot reach are
//! the two ends of this link, and no cluster hands out 169.254.77.0/30 or a ULA prefix
//! spelling "tether".

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

/// The name of the TUN device inside the namespace.
pub const TUN_NAME: &str = "tun0";

/// The MTU of `tun0`: the largest an IP packet on a TUN can be with room for nothing else,
/// as slirp4netns uses. Fewer, larger packets cut the per-packet cost of the userspace stack
/// (a 100 MB transfer is ~1600 segments rather than ~70000).
pub const MTU: usize = 65520;

/// The two ends of `tun0`: the namespace's side (CMD's source address) and the stack's side
/// (the default gateway and the DNS server CMD's resolv.conf names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    pub ns_v4: Ipv4Addr,
    pub stack_v4: Ipv4Addr,
    /// The prefix length of the IPv4 link.
    pub prefix_v4: u8,
    pub ns_v6: Ipv6Addr,
    pub stack_v6: Ipv6Addr,
    pub prefix_v6: u8,
}

impl Addresses {
    /// The one plan every namespace uses: namespaces are private, so two `tether run`s at
    /// once do not collide.
    pub const fn default_plan() -> Self {
        Self {
            ns_v4: Ipv4Addr::new(169, 254, 77, 2),
            stack_v4: Ipv4Addr::new(169, 254, 77, 1),
            prefix_v4: 30,
            // fd74:6574:6865:72::/64 ("tether" in hex after the ULA's fd).
            ns_v6: Ipv6Addr::new(0xfd74, 0x6574, 0x6865, 0x72, 0, 0, 0, 2),
            stack_v6: Ipv6Addr::new(0xfd74, 0x6574, 0x6865, 0x72, 0, 0, 0, 1),
            prefix_v6: 64,
        }
    }

    /// The IPv4 netmask of `prefix_v4`.
    pub fn netmask_v4(&self) -> Ipv4Addr {
        let bits = u32::MAX
            .checked_shl(32 - u32::from(self.prefix_v4))
            .unwrap_or(0);
        Ipv4Addr::from(bits)
    }

    /// The address CMD's resolver asks: the stack's IPv4 end, port 53.
    pub fn dns_server(&self) -> SocketAddr {
        SocketAddr::from((self.stack_v4, 53))
    }
}

/// What tether keeps of the laptop's resolv.conf: where to forward names the cluster does
/// not know, and the lines that shape how CMD's resolver searches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaptopResolver {
    /// The laptop's nameservers, port 53, in the file's order (glibc's order of asking).
    pub nameservers: Vec<SocketAddr>,
    /// `search`/`domain` and `options` lines, kept as written.
    pub kept_lines: Vec<String>,
}

/// Where glibc asks when resolv.conf names no nameserver: the local host.
const DEFAULT_NAMESERVER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 53);

impl LaptopResolver {
    /// Reads resolv.conf text as glibc does: `nameserver ADDR` lines (IPv6 ones may carry a
    /// `%scope`), comments from `#` or `;`, unknown lines ignored.
    pub fn parse(text: &str) -> Self {
        let mut nameservers = Vec::new();
        let mut kept_lines = Vec::new();
        for line in text.lines() {
            let content = line.split(['#', ';']).next().unwrap_or("").trim();
            let mut words = content.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    let Some(addr) = words.next() else { continue };
                    // A scoped IPv6 address (fe80::1%eth0) cannot be parsed by std; its
                    // scope would need the interface index, so such servers are skipped.
                    if let Ok(ip) = addr.parse::<std::net::IpAddr>() {
                        nameservers.push(SocketAddr::new(ip, 53));
                    }
                }
                Some("search" | "domain" | "options") => kept_lines.push(content.to_string()),
                _ => {}
            }
        }
        if nameservers.is_empty() {
            nameservers.push(DEFAULT_NAMESERVER);
        }
        Self {
            nameservers,
            kept_lines,
        }
    }

    /// The resolv.conf CMD sees: tether's DNS server only, with the laptop's search list
    /// and options, so relative laptop names resolve as they did.
    pub fn namespace_resolv_conf(&self, addrs: &Addresses) -> String {
        let mut out = String::from(
            "# Written by `tether run`: cluster names first, then the laptop's own resolver.\n",
        );
        out.push_str(&format!("nameserver {}\n", addrs.dns_server().ip()));
        for line in &self.kept_lines {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

/// The uid and gid maps of a user namespace that maps the caller to itself: one line each,
/// "inside outside count", the only map an unprivileged process may write for itself.
pub fn id_map(id: u32) -> String {
    format!("{id} {id} 1\n")
}

/// Files that glibc's resolver would ask instead of resolv.conf, through sockets that a
/// network namespace does not cut off (they live in the file system): systemd-resolved's
/// varlink socket (nss-resolve) and nscd's. Hiding them makes those NSS modules say
/// "unavailable", and glibc falls back to the `dns` module, which reads our resolv.conf.
pub const RESOLVER_SOCKETS: &[&str] = &[
    "/run/systemd/resolve/io.systemd.Resolve",
    "/run/nscd/socket",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nameservers_in_order_and_keeps_search_and_options() {
        let text = "# generated\nnameserver 10.255.255.53\nnameserver fd00::53 # v6\n\
                    nameserver fe80::1%eth0\nsearch corp.example lab.example\n\
                    options edns0 trust-ad\n; comment\nsortlist 10.0.0.0\n";
        let r = LaptopResolver::parse(text);
        assert_eq!(
            r.nameservers,
            vec![
                "10.255.255.53:53".parse().unwrap(),
                "[fd00::53]:53".parse().unwrap()
            ]
        );
        assert_eq!(
            r.kept_lines,
            vec!["search corp.example lab.example", "options edns0 trust-ad"]
        );
    }

    #[test]
    fn no_nameserver_means_the_local_host_as_glibc_does() {
        let r = LaptopResolver::parse("search example.org\n");
        assert_eq!(r.nameservers, vec![DEFAULT_NAMESERVER]);
    }

    #[test]
    fn the_namespace_resolv_conf_names_only_the_stack() {
        let addrs = Addresses::default_plan();
        let r = LaptopResolver::parse("nameserver 1.1.1.1\nsearch corp.example\n");
        let conf = r.namespace_resolv_conf(&addrs);
        let servers: Vec<_> = conf
            .lines()
            .filter(|l| l.starts_with("nameserver"))
            .collect();
        assert_eq!(servers, vec!["nameserver 169.254.77.1"]);
        assert!(conf.contains("\nsearch corp.example\n"));
    }

    #[test]
    fn the_link_is_a_slash_30_with_the_stack_at_its_first_address() {
        let a = Addresses::default_plan();
        assert_eq!(a.netmask_v4(), Ipv4Addr::new(255, 255, 255, 252));
        let net = |ip: Ipv4Addr| u32::from(ip) & u32::from(a.netmask_v4());
        assert_eq!(net(a.ns_v4), net(a.stack_v4));
        assert_eq!(a.dns_server(), "169.254.77.1:53".parse().unwrap());
        assert!(a.ns_v4.is_link_local() && a.stack_v4.is_link_local());
        assert!(a.ns_v6.is_unique_local() && a.stack_v6.is_unique_local());
    }

    #[test]
    fn the_id_map_maps_the_caller_to_itself() {
        assert_eq!(id_map(1000), "1000 1000 1\n");
    }
}

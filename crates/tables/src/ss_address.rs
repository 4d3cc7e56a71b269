//! Inet addresses rendered as `ss -n` renders them (iproute2's `inet_addr_print`), shared by
//! the socket tables so that their saved queries print what `ss` prints.

use std::net::IpAddr;

/// An address as `ss -n` prints it: IPv4 dotted, IPv6 in brackets (an IPv4-mapped one too:
/// `[::ffff:127.0.0.1]`), and `*` for the unspecified IPv6 address of a socket not marked
/// `IPV6_V6ONLY` (a dual-stack listener). `ss` knows `v6only` only for sockets in LISTEN or
/// CLOSE state (netlink sends it for no others), so callers pass `false` for the rest.
pub fn ss_address(addr: IpAddr, v6only: bool) -> String {
    match addr {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) if v6.is_unspecified() && !v6only => "*".to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_as_ss() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(ss_address(ip("127.0.0.1"), false), "127.0.0.1");
        assert_eq!(ss_address(ip("0.0.0.0"), false), "0.0.0.0");
        assert_eq!(ss_address(ip("::"), false), "*");
        assert_eq!(ss_address(ip("::"), true), "[::]");
        assert_eq!(ss_address(ip("::1"), false), "[::1]");
        assert_eq!(ss_address(ip("::ffff:127.0.0.1"), false), "[::ffff:127.0.0.1]");
    }
}

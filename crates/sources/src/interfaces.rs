//! Network interface names of the calling thread's network namespace
//! (`if_indextoname(3)`, an `SIOCGIFNAME` ioctl on a socket of that namespace), for the
//! interface a socket is bound to with `SO_BINDTODEVICE`.

/// Name of interface `ifindex` in the calling thread's network namespace, `None` if
/// `ifindex` is 0 (not bound) or no such interface exists.
pub fn interface_name(ifindex: u32) -> Option<String> {
    if ifindex == 0 {
        return None;
    }
    // nix 0.31 reports an unknown index as an empty name rather than an error (it checks
    // the returned pointer against -1, not NULL); no interface has an empty name.
    let name = nix::net::if_::if_indextoname(ifindex).ok()?;
    Some(name.to_string_lossy().into_owned()).filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_indexes() {
        let lo = nix::net::if_::if_nametoindex("lo").expect("lo exists");
        assert_eq!(interface_name(lo).as_deref(), Some("lo"));
        assert_eq!(interface_name(0), None);
        assert_eq!(interface_name(u32::MAX - 7), None);
    }
}

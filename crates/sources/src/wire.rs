//! Host-order integers read out of the fixed-layout kernel structs that netlink carries
//! (`struct tcp_info`, the `sk_meminfo` array, single-value attributes): every read is
//! bounds-checked and a short buffer gives `None`, never a panic.

/// The `u32` at byte `at` of `bytes`, in host byte order.
pub(crate) fn ne_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(*bytes.get(at..)?.first_chunk()?))
}

/// The `u64` at byte `at` of `bytes`, in host byte order.
pub(crate) fn ne_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(*bytes.get(at..)?.first_chunk()?))
}

/// A kernel socket cookie sent as `__u32 cookie[2]` (low word first, each in host order).
pub(crate) fn cookie(words: &[u8; 8]) -> u64 {
    let [a, b, c, d, e, f, g, h] = *words;
    u64::from(u32::from_ne_bytes([a, b, c, d])) | (u64::from(u32::from_ne_bytes([e, f, g, h])) << 32)
}

/// Netlink messages and attributes built by hand, for decoder tests.
#[cfg(test)]
pub(crate) mod samples {
    /// One netlink message: `struct nlmsghdr` (flags `NLM_F_MULTI`) then `payload`, padded.
    pub(crate) fn nlmsg(kind: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = 16 + payload.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&2u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        m.resize(len.next_multiple_of(4), 0);
        m
    }

    /// One `struct nlattr` with its value, padded.
    pub(crate) fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let len = 4 + value.len();
        let mut a = Vec::new();
        a.extend_from_slice(&(len as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(value);
        a.resize(len.next_multiple_of(4), 0);
        a
    }

    /// Every prefix of `bytes`, and 20,000 random mutations of it (xorshift, fixed seed),
    /// handed to `decode`: it must return, never panic.
    pub(crate) fn mutate(bytes: &[u8], mut decode: impl FnMut(&[u8])) {
        for cut in 0..=bytes.len() {
            decode(&bytes[..cut]);
        }
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut mutated = bytes.to_vec();
            for _ in 0..(next() % 6 + 1) {
                let at = (next() as usize) % mutated.len();
                mutated[at] = next() as u8;
            }
            let cut = (next() as usize) % (mutated.len() + 1);
            decode(&mutated[..cut]);
        }
    }
}

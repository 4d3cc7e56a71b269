//! VMCOREINFO: the note every kernel writes about itself for crash tools (`SYMBOL(name)=hex`
//! addresses, `NUMBER(name)=decimal` values), which libdrgn reads from a vmcore, a QEMU guest
//! or the live kernel. kql reads from it where the kallsyms tables are (Linux ≥ 6.0) and the
//! kernel image's physical base (`NUMBER(phys_base)`).

use std::collections::HashMap;

use kql_drgn::{Program, Result};

/// The `SYMBOL()` and `NUMBER()` lines of a kernel's VMCOREINFO.
pub struct Vmcoreinfo {
    symbols: HashMap<String, u64>,
    numbers: HashMap<String, i64>,
}

impl Vmcoreinfo {
    /// The kernel's VMCOREINFO, as libdrgn found it.
    pub fn read(program: &Program) -> Result<Vmcoreinfo> {
        let text = program.object("VMCOREINFO")?.read_c_string()?;
        Ok(Vmcoreinfo::parse(&text))
    }

    fn parse(text: &str) -> Vmcoreinfo {
        let entries = |prefix: &'static str| {
            text.lines().filter_map(move |line| line.strip_prefix(prefix)?.split_once(")="))
        };
        Vmcoreinfo {
            symbols: entries("SYMBOL(")
                .filter_map(|(name, hex)| Some((name.to_string(), u64::from_str_radix(hex.trim(), 16).ok()?)))
                .collect(),
            numbers: entries("NUMBER(")
                .filter_map(|(name, value)| Some((name.to_string(), value.trim().parse().ok()?)))
                .collect(),
        }
    }

    /// `SYMBOL(name)`: an address (or, for a few, a pointer's value).
    pub fn symbol(&self, name: &str) -> Option<u64> {
        self.symbols.get(name).copied()
    }

    /// Every `SYMBOL()` line.
    pub fn symbols(&self) -> impl Iterator<Item = (&str, u64)> {
        self.symbols.iter().map(|(name, &address)| (name.as_str(), address))
    }

    /// `NUMBER(name)`.
    pub fn number(&self, name: &str) -> Option<i64> {
        self.numbers.get(name).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_and_numbers_are_read() {
        let info = Vmcoreinfo::parse(
            "OSRELEASE=6.1.0\nSYMBOL(init_uts_ns)=ffffffff82a12345\nNUMBER(phys_base)=-2113929216\nNUMBER(bad)=x\n",
        );
        assert_eq!(info.symbol("init_uts_ns"), Some(0xffffffff82a12345));
        assert_eq!(info.number("phys_base"), Some(-2113929216));
        assert_eq!((info.number("bad"), info.symbol("OSRELEASE")), (None, None));
    }
}

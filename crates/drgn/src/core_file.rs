//! kql's own handling of target files: checks before libdrgn sees them (that a vmcore is
//! whole — libdrgn would only fail later, at the first read past the end — and what build id
//! a vmlinux has), and [`CoreImage`], an ELF vmcore mapped into memory so walks can read the
//! kernel's physical memory without a system call per read.

use std::ffi::c_void;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use drgn_sys as sys;

use crate::{Error, ErrorKind, Result};

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
/// Signatures of the kdump formats libkdumpfile reads (compressed kdump, flattened, diskdump).
const KDUMP_MAGICS: [&[u8]; 3] = [b"KDUMP   ", b"makedumpfile", b"DISKDUMP"];

/// Fails unless `path` is a whole ELF vmcore or a file in a kdump format.
pub fn check(path: &Path) -> Result<()> {
    let file = File::open(path).map_err(|e| os_error(path, e))?;
    let len = file.metadata().map_err(|e| os_error(path, e))?.len();
    let mut header = [0u8; 64];
    let got = file.read_at(&mut header, 0).map_err(|e| os_error(path, e))?;
    if header[..got].starts_with(ELF_MAGIC) {
        return check_elf_segments(path, &file, len, &header[..got]);
    }
    if KDUMP_MAGICS.iter().any(|magic| header[..got].starts_with(magic)) {
        return Ok(());
    }
    Err(bad(format!("{} is not a vmcore: neither ELF nor a kdump format", path.display())))
}

/// Every `PT_LOAD` segment of a 64-bit little-endian ELF core must lie inside the file.
fn check_elf_segments(path: &Path, file: &File, len: u64, header: &[u8]) -> Result<()> {
    let truncated = || bad(format!("{} is truncated: its ELF header is incomplete", path.display()));
    if header.len() < 64 || header[4] != 2 || header[5] != 1 {
        return Err(if header.len() < 64 {
            truncated()
        } else {
            bad(format!("{} is not a 64-bit little-endian ELF vmcore", path.display()))
        });
    }
    let phoff = u64::from_le_bytes(header[0x20..0x28].try_into().expect("8 bytes"));
    let phentsize = u64::from(u16::from_le_bytes([header[0x36], header[0x37]]));
    let phnum = u64::from(u16::from_le_bytes([header[0x38], header[0x39]]));
    let mut table = vec![0u8; (phentsize * phnum) as usize];
    file.read_exact_at(&mut table, phoff).map_err(|_| truncated())?;
    let needed = table
        .chunks_exact(phentsize as usize)
        .filter(|entry| entry.len() >= 0x28)
        .map(|entry| {
            let offset = u64::from_le_bytes(entry[0x08..0x10].try_into().expect("8 bytes"));
            let file_size = u64::from_le_bytes(entry[0x20..0x28].try_into().expect("8 bytes"));
            offset.saturating_add(file_size)
        })
        .max()
        .unwrap_or(0);
    if needed > len {
        return Err(bad(format!(
            "{} is truncated: its segments need {needed} bytes, the file has {len}",
            path.display()
        )));
    }
    Ok(())
}

/// One `PT_LOAD` segment: physical addresses `paddr..paddr + size` at file offset `offset`.
#[derive(Debug, Clone, Copy)]
struct Segment {
    paddr: u64,
    offset: u64,
    size: u64,
}

/// An ELF vmcore mapped read-only, indexed by physical address.
pub struct CoreImage {
    map: *const u8,
    len: usize,
    segments: Vec<Segment>,
}

// SAFETY: the mapping is private and read-only; nothing writes through it, so sharing and
// sending the pointer between threads is as safe as sharing a `&[u8]`.
unsafe impl Send for CoreImage {}
// SAFETY: as above.
unsafe impl Sync for CoreImage {}

impl CoreImage {
    /// Maps the ELF vmcore at `path`; `None` if it is not a 64-bit ELF file or its segments
    /// do not lie inside it (libdrgn's reads still work for those).
    pub fn open(path: &Path) -> Option<CoreImage> {
        let file = File::open(path).ok()?;
        let len = file.metadata().ok()?.len();
        let mut header = [0u8; 64];
        if file.read_at(&mut header, 0).ok()? < 64 || !header.starts_with(ELF_MAGIC) || header[4] != 2 {
            return None;
        }
        let mut segments = load_segments(&file, &header)?;
        if segments.iter().any(|s| s.offset.saturating_add(s.size) > len) {
            return None;
        }
        segments.sort_by_key(|s| s.paddr);
        // SAFETY: a fresh private read-only mapping of the whole file; the kernel picks the
        // address; the result is checked against MAP_FAILED before use.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len as usize,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        (map != libc::MAP_FAILED).then(|| CoreImage { map: map.cast(), len: len as usize, segments })
    }

    /// The `len` bytes of physical memory at `address`, borrowed from the mapping; `None`
    /// if any of them is not in one segment of the file.
    pub fn physical(&self, address: u64, len: usize) -> Option<&[u8]> {
        let index = self.segments.partition_point(|s| s.paddr <= address);
        let segment = self.segments[index.checked_sub(1)?];
        let within = address - segment.paddr;
        if within.saturating_add(len as u64) > segment.size {
            return None;
        }
        let start = (segment.offset + within) as usize;
        debug_assert!(start + len <= self.len);
        // SAFETY: `start + len` lies inside the segment, which `open` checked lies inside the
        // `len`-byte read-only mapping; the slice borrows `self`, which owns the mapping.
        Some(unsafe { std::slice::from_raw_parts(self.map.add(start), len) })
    }
}

impl Drop for CoreImage {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `open` made; no slice into it outlives `self`.
        unsafe { libc::munmap(self.map.cast_mut().cast(), self.len) };
    }
}

/// The `PT_LOAD` segments of a 64-bit little-endian ELF file whose header is `header`.
fn load_segments(file: &File, header: &[u8]) -> Option<Vec<Segment>> {
    const PT_LOAD: u32 = 1;
    let phoff = u64::from_le_bytes(header[0x20..0x28].try_into().ok()?);
    let phentsize = usize::from(u16::from_le_bytes([header[0x36], header[0x37]]));
    let phnum = usize::from(u16::from_le_bytes([header[0x38], header[0x39]]));
    if phentsize < 0x30 {
        return None;
    }
    let mut table = vec![0u8; phentsize * phnum];
    file.read_exact_at(&mut table, phoff).ok()?;
    let field = |entry: &[u8], at: usize| u64::from_le_bytes(entry[at..at + 8].try_into().expect("8 bytes"));
    let segments = table
        .chunks_exact(phentsize)
        .filter(|entry| u32::from_le_bytes(entry[0..4].try_into().expect("4 bytes")) == PT_LOAD)
        .map(|entry| Segment {
            offset: field(entry, 0x08),
            paddr: field(entry, 0x18),
            size: field(entry, 0x20),
        })
        .collect();
    Some(segments)
}

/// The GNU build id of an ELF file (hex), `None` if it has none; an error if the file is
/// not ELF or is cut short (its section header table lies past its end).
pub fn build_id(path: &Path) -> Result<Option<String>> {
    let file = File::open(path).map_err(|e| os_error(path, e))?;
    check_elf_sections(path, &file)?;
    // SAFETY: elf_version must precede elf_begin; the descriptor stays open (owned by
    // `file`) until elf_end; the build id bytes belong to the Elf handle and are copied out
    // before elf_end releases it.
    unsafe {
        sys::elf_version(sys::EV_CURRENT);
        let elf = sys::elf_begin(file.as_raw_fd(), sys::ELF_C_READ_MMAP, std::ptr::null_mut());
        if elf.is_null() {
            return Err(bad(format!("{} is not an ELF file", path.display())));
        }
        let mut bytes: *const c_void = std::ptr::null();
        let len = sys::dwelf_elf_gnu_build_id(elf, &mut bytes);
        let hex = (len > 0).then(|| {
            std::slice::from_raw_parts(bytes.cast::<u8>(), len as usize)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        });
        sys::elf_end(elf);
        Ok(hex)
    }
}

/// Fails unless `file` is a 64-bit little-endian ELF file whose section headers it holds.
fn check_elf_sections(path: &Path, file: &File) -> Result<()> {
    let len = file.metadata().map_err(|e| os_error(path, e))?.len();
    let mut header = [0u8; 64];
    let got = file.read_at(&mut header, 0).map_err(|e| os_error(path, e))?;
    if !header[..got].starts_with(ELF_MAGIC) {
        return Err(bad(format!("{} is not an ELF file", path.display())));
    }
    if got < 64 {
        return Err(bad(format!("{} is truncated: its ELF header is incomplete", path.display())));
    }
    let shoff = u64::from_le_bytes(header[0x28..0x30].try_into().expect("8 bytes"));
    let shentsize = u64::from(u16::from_le_bytes([header[0x3a], header[0x3b]]));
    let shnum = u64::from(u16::from_le_bytes([header[0x3c], header[0x3d]]));
    let needed = shoff.saturating_add(shentsize * shnum);
    if needed > len {
        return Err(bad(format!(
            "{} is truncated: it needs {needed} bytes, the file has {len}",
            path.display()
        )));
    }
    Ok(())
}

fn os_error(path: &Path, error: std::io::Error) -> Error {
    Error::new(ErrorKind::Os, format!("{}: {error}", path.display()))
}

fn bad(message: String) -> Error {
    Error::new(ErrorKind::BadData, message)
}

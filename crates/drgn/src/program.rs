//! [`Program`]: one kernel being inspected (its [`Target`]) and its debug info.

use std::cell::OnceCell;
use std::ffi::{CStr, CString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::ptr::{self, NonNull};

use drgn_sys as sys;

use crate::core_file;
use crate::{CoreImage, Error, ErrorKind, Object, Result, Type};

/// Which kernel a [`Program`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The running kernel, through `/proc/kcore`.
    LiveKernel,
    /// A core dump: an ELF vmcore (`dump-guest-memory`, `/proc/vmcore`) or a kdump file.
    CoreDump(PathBuf),
    /// A running QEMU guest whose RAM is read live; the path is its QMP unix socket.
    QemuQmp(PathBuf),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::LiveKernel => f.write_str("the live kernel (/proc/kcore)"),
            Target::CoreDump(path) => write!(f, "vmcore {}", path.display()),
            Target::QemuQmp(path) => write!(f, "QEMU guest at {}", path.display()),
        }
    }
}

/// Where a [`Program`] gets the kernel's types and symbols (DWARF) from.
#[derive(Debug, Clone, Copy)]
pub enum DebugInfo<'a> {
    /// libdrgn's standard search (`/usr/lib/debug`, `/boot`, `/lib/modules/RELEASE`, …).
    Default,
    /// This vmlinux, which must match the kernel's build id.
    Vmlinux(&'a Path),
}

/// A kernel being inspected through libdrgn.
pub struct Program {
    raw: NonNull<sys::drgn_program>,
    target: Target,
    /// The vmcore mapped into memory, made on first use and kept while the program lives.
    core_image: OnceCell<Option<CoreImage>>,
}

// SAFETY: libdrgn allows a program to be used from any thread, one thread at a time. `Program`
// is not `Sync` (it holds a raw pointer), so `&Program` never crosses threads, and every
// `Object`/`Type` borrows the program, so they cannot outlive it or leave with it.
unsafe impl Send for Program {}

impl Program {
    /// Opens `target`. Fails with one sentence naming the target and the reason (no
    /// `/proc/kcore`, not root, a truncated vmcore, a dead QMP socket, …).
    pub fn attach(target: Target) -> Result<Program> {
        if let Target::CoreDump(path) = &target {
            core_file::check(path)?;
        }
        let program = Program::create(target)?;
        let raw = program.raw.as_ptr();
        // SAFETY: `raw` is a live program owned by `program`; the C strings outlive the calls.
        let error = unsafe {
            match &program.target {
                Target::LiveKernel => sys::drgn_program_set_kernel(raw),
                Target::CoreDump(path) => sys::drgn_program_set_core_dump(raw, c_path(path)?.as_ptr()),
                Target::QemuQmp(path) => sys::drgn_program_set_qemu_qmp(raw, c_path(path)?.as_ptr()),
            }
        };
        Error::check(error).map_err(|e| e.context(format!("cannot open {}", program.target)))?;
        // SAFETY: `raw` is a live program.
        let flags = unsafe { sys::drgn_program_flags(raw) };
        if flags & sys::DRGN_PROGRAM_IS_LINUX_KERNEL == 0 {
            let message = format!("{} is not a Linux kernel", program.target);
            return Err(Error::new(ErrorKind::BadData, message));
        }
        Ok(program)
    }

    fn create(target: Target) -> Result<Program> {
        let mut raw = ptr::null_mut();
        // SAFETY: a NULL platform asks libdrgn to detect it; `raw` receives the new program.
        Error::check(unsafe { sys::drgn_program_create(ptr::null(), &mut raw) })?;
        let raw = NonNull::new(raw).ok_or_else(|| Error::new(ErrorKind::NoMemory, "drgn_program_create"))?;
        // SAFETY: `raw` is the live program just created; kql reports problems itself, so
        // libdrgn's own logging to stderr is switched off.
        unsafe { sys::drgn_program_set_log_level(raw.as_ptr(), sys::DRGN_LOG_NONE) };
        Ok(Program { raw, target, core_image: OnceCell::new() })
    }

    /// What this program reads.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Loads the kernel's debug info. A missing, unusable or mismatched vmlinux is an error
    /// naming the file and both build ids.
    pub fn load_debug_info(&mut self, debug_info: DebugInfo) -> Result<()> {
        let result = match debug_info {
            DebugInfo::Default => self.load(&[], true),
            DebugInfo::Vmlinux(path) => {
                std::fs::metadata(path).map_err(|e| {
                    Error::new(ErrorKind::Os, format!("cannot use vmlinux {}: {e}", path.display()))
                })?;
                self.load(&[c_path(path)?], false)
            }
        };
        match result {
            Err(e) if e.kind != ErrorKind::MissingDebugInfo => return Err(e),
            _ => {}
        }
        match self.kernel_build_id() {
            Some(KernelDebugFile::Loaded) => Ok(()),
            Some(KernelDebugFile::Wanted(kernel_id)) => Err(self.missing_debug_info(debug_info, &kernel_id)),
            // libdrgn gives up before looking at the kernel when no given file is usable.
            None => Err(self.missing_debug_info(debug_info, "")),
        }
    }

    fn load(&mut self, paths: &[CString], load_main: bool) -> Result<()> {
        let mut pointers: Vec<*const libc::c_char> = paths.iter().map(|p| p.as_ptr()).collect();
        // SAFETY: `pointers` holds `paths.len()` valid C strings that outlive the call.
        Error::check(unsafe {
            sys::drgn_program_load_debug_info(
                self.raw.as_ptr(),
                pointers.as_mut_ptr(),
                pointers.len(),
                false,
                load_main,
            )
        })
    }

    /// Whether the kernel got its debug file, or else its build id (hex, may be empty).
    fn kernel_build_id(&self) -> Option<KernelDebugFile> {
        // SAFETY: a NULL name matches any main module; the returned module belongs to the
        // program and lives as long as it; the build id string is owned by the module.
        unsafe {
            let module = sys::drgn_module_find_main(self.raw.as_ptr(), ptr::null());
            if module.is_null() {
                return None;
            }
            if !sys::drgn_module_wants_debug_file(module) {
                return Some(KernelDebugFile::Loaded);
            }
            let (mut raw, mut len) = (ptr::null(), 0);
            let hex = sys::drgn_module_build_id(module, &mut raw, &mut len);
            let hex =
                if hex.is_null() { String::new() } else { CStr::from_ptr(hex).to_string_lossy().into() };
            Some(KernelDebugFile::Wanted(hex))
        }
    }

    /// The file the kernel's debug info was loaded from, once it is.
    pub fn kernel_debug_file(&self) -> Option<PathBuf> {
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: a NULL name matches any main module; the module and its path string belong
        // to the program and stay valid while it lives; the path is copied out at once.
        unsafe {
            let module = sys::drgn_module_find_main(self.raw.as_ptr(), ptr::null());
            if module.is_null() {
                return None;
            }
            let path = sys::drgn_module_debug_file_path(module);
            (!path.is_null())
                .then(|| PathBuf::from(std::ffi::OsStr::from_bytes(CStr::from_ptr(path).to_bytes())))
        }
    }

    fn missing_debug_info(&self, debug_info: DebugInfo, kernel_id: &str) -> Error {
        let release = self.kernel_release().unwrap_or_else(|_| "?".into());
        let kernel = match kernel_id {
            "" => format!("kernel {release}"),
            id => format!("kernel {release} (build id {id})"),
        };
        let message = match debug_info {
            DebugInfo::Default => format!(
                "no debug info found for {kernel}: install its debug package (e.g. linux-image-{release}-dbg) or give --vmlinux FILE"
            ),
            DebugInfo::Vmlinux(path) => match core_file::build_id(path) {
                Ok(Some(id)) if id != kernel_id && !kernel_id.is_empty() => format!(
                    "vmlinux {} does not match the target: {kernel}, but {} has build id {id}",
                    path.display(),
                    path.display()
                ),
                Ok(Some(id)) => {
                    format!(
                        "vmlinux {} (build id {id}) has no usable debug info for {kernel}",
                        path.display()
                    )
                }
                Ok(None) => {
                    format!("vmlinux {} has no build id, so it cannot be matched to {kernel}", path.display())
                }
                Err(e) => format!("vmlinux {} is not usable for {kernel}: {e}", path.display()),
            },
        };
        Error::new(ErrorKind::MissingDebugInfo, message)
    }

    /// The kernel's release (`uname -r`), from VMCOREINFO.
    pub fn kernel_release(&self) -> Result<String> {
        self.object("UTS_RELEASE")?.read_c_string()
    }

    /// Whether this is the running kernel (live host or live guest), not a dump.
    pub fn is_live(&self) -> bool {
        // SAFETY: `raw` is a live program.
        unsafe { sys::drgn_program_flags(self.raw.as_ptr()) & sys::DRGN_PROGRAM_IS_LIVE != 0 }
    }

    /// The global variable, function or constant `name`.
    pub fn object(&self, name: &str) -> Result<Object<'_>> {
        self.find_object(name, sys::DRGN_FIND_OBJECT_ANY)
    }

    /// The global variable `name` (not a function or an enumerator).
    pub fn variable(&self, name: &str) -> Result<Object<'_>> {
        self.find_object(name, sys::DRGN_FIND_OBJECT_VARIABLE)
    }

    /// The global `name` of the kinds `flags` allows.
    fn find_object(&self, name: &str, flags: sys::drgn_find_object_flags) -> Result<Object<'_>> {
        let c_name = c_string(name)?;
        let mut object = Object::new(self);
        // SAFETY: `object` was initialised for this program; a NULL filename searches all files.
        Error::check(unsafe {
            sys::drgn_program_find_object(
                self.raw.as_ptr(),
                c_name.as_ptr(),
                ptr::null(),
                flags,
                object.raw_mut(),
            )
        })?;
        Ok(object)
    }

    /// The symbol containing `address`: its name and start address; `None` if no symbol
    /// (of the kernel's or a loaded module's symbol table) contains it.
    pub fn symbol_at(&self, address: u64) -> Result<Option<(String, u64)>> {
        let mut symbol = ptr::null_mut();
        // SAFETY: `raw` is a live program; on success `symbol` is a new symbol this function
        // owns: its name is copied out before it is destroyed, once.
        let error =
            unsafe { sys::drgn_program_find_symbol_by_address(self.raw.as_ptr(), address, &mut symbol) };
        match Error::check(error) {
            Err(e) if e.kind == ErrorKind::Lookup => return Ok(None),
            result => result?,
        }
        // SAFETY: as above; the name is NUL-terminated and owned by the symbol.
        unsafe {
            let name = CStr::from_ptr(sys::drgn_symbol_name(symbol)).to_string_lossy().into_owned();
            let start = sys::drgn_symbol_address(symbol);
            sys::drgn_symbol_destroy(symbol);
            Ok(Some((name, start)))
        }
    }

    /// The type named `name`, e.g. `struct sock` or `unsigned long`.
    pub fn find_type(&self, name: &str) -> Result<Type<'_>> {
        let c_name = c_string(name)?;
        let mut qualified = sys::drgn_qualified_type { type_: ptr::null_mut(), qualifiers: 0 };
        // SAFETY: valid program and C string; libdrgn fills `qualified` on success.
        Error::check(unsafe {
            sys::drgn_program_find_type(self.raw.as_ptr(), c_name.as_ptr(), ptr::null(), &mut qualified)
        })?;
        Ok(Type::from_raw(self, qualified))
    }

    /// Whether the kernel has a type named `name` (kernel-version differences).
    pub fn has_type(&self, name: &str) -> Result<bool> {
        found(self.find_type(name))
    }

    /// Whether the kernel has a global named `name`.
    pub fn has_object(&self, name: &str) -> Result<bool> {
        found(self.object(name))
    }

    /// Reads `buf.len()` bytes of kernel virtual memory at `address` in one read.
    pub fn read_memory(&self, address: u64, buf: &mut [u8]) -> Result<()> {
        self.read(address, buf, false)
    }

    /// For an ELF vmcore target, the file mapped into memory (see [`CoreImage`]), mapped on
    /// the first call.
    pub fn core_image(&self) -> Option<&CoreImage> {
        let image = self.core_image.get_or_init(|| match &self.target {
            Target::CoreDump(path) => CoreImage::open(path),
            _ => None,
        });
        image.as_ref()
    }

    /// Reads `buf.len()` bytes of physical memory at `address` in one read.
    pub fn read_physical_memory(&self, address: u64, buf: &mut [u8]) -> Result<()> {
        self.read(address, buf, true)
    }

    fn read(&self, address: u64, buf: &mut [u8], physical: bool) -> Result<()> {
        // SAFETY: `buf` is valid for `buf.len()` writable bytes for the duration of the call.
        Error::check(unsafe {
            sys::drgn_program_read_memory(
                self.raw.as_ptr(),
                buf.as_mut_ptr().cast(),
                address,
                buf.len(),
                physical,
            )
        })
    }

    /// Reads `buf.len()` bytes of a process's memory at `address`, translated through the page
    /// table `pgd` (`task->mm->pgd`): drgn's `access_remote_vm()`.
    pub fn read_user_memory(&self, pgd: u64, address: u64, buf: &mut [u8]) -> Result<()> {
        // SAFETY: `buf` is valid for `buf.len()` writable bytes; the helper only reads the
        // target's memory through the live program.
        Error::check(unsafe {
            sys::linux_helper_read_vm(self.raw.as_ptr(), pgd, address, buf.as_mut_ptr().cast(), buf.len())
        })
    }

    /// Reads a little-endian `u64` (e.g. a pointer) at `address`.
    pub fn read_u64(&self, address: u64) -> Result<u64> {
        let mut bytes = [0; 8];
        self.read_memory(address, &mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    pub(crate) fn raw(&self) -> *mut sys::drgn_program {
        self.raw.as_ptr()
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: the program is owned here; every Object/Type borrowing it is gone.
        unsafe { sys::drgn_program_destroy(self.raw.as_ptr()) }
    }
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Program").field("target", &self.target).finish()
    }
}

enum KernelDebugFile {
    Loaded,
    Wanted(String),
}

/// `Ok(true)` for a value, `Ok(false)` for a lookup miss, other errors as they are.
fn found<T>(result: Result<T>) -> Result<bool> {
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.kind == ErrorKind::Lookup => Ok(false),
        Err(e) => Err(e),
    }
}

pub(crate) fn c_string(text: &str) -> Result<CString> {
    CString::new(text).map_err(|_| Error::new(ErrorKind::Other, format!("{text:?} contains a NUL byte")))
}

fn c_path(path: &Path) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::new(ErrorKind::Other, format!("{} contains a NUL byte", path.display())))
}

//! Debian kernels with their debug info, resolved and downloaded with apt, extracted once and
//! cached under [`cache_dir()`]`/kernels/`.
//!
//! For each [`Series`] the rig resolves a kernel release (`6.1.0-56-amd64`), downloads
//! `linux-image-<release>` and `linux-image-<release>-dbg` with `apt-get download`, and keeps
//! only what the tests need in `kernels/<release>/`:
//!
//! - `vmlinuz`: the bootable image (`./boot/vmlinuz-<release>` of the image package);
//! - `vmlinux`: the unstripped ELF with DWARF (`./usr/lib/debug/boot/vmlinux-<release>` of the
//!   `-dbg` package);
//! - `modules/`: the image package's `lib/modules/<release>/` tree, with compressed modules
//!   (`.ko.xz` on 6.12; `.ko.zst`, `.ko.gz` too) decompressed because busybox `insmod` loads
//!   plain `.ko` files only, and a `modules.dep` the rig writes (the packages ship none; see
//!   [`Kernel::is_builtin`] for drivers built in, such as `virtio_pci` on 6.12);
//! - `complete`: written last, after the checks passed; a directory without it is redone.
//!
//! The resolved release is pinned in `kernels/<series>.release` (e.g. `6.1.release`), so a warm
//! cache needs neither the network nor apt lists; delete that file to move to a newer kernel.
//!
//! Bookworm kernels are resolved with the system's apt configuration first and, if that
//! cannot resolve or download them (no or stale lists, other mirrors), with private apt lists
//! for bookworm and bookworm-security; bullseye's always uses private lists. Private lists live
//! in `kernels/apt/<suite>/` and are passed to apt with `-o Dir::...` options, so the system's
//! apt state is left alone. Concurrent [`fetch`]es (several test processes) serialize on an
//! exclusive `flock` of `kernels/.lock`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{Result, cache_dir, elf, rig_error};

/// The keyring that signs Debian's archives (package `debian-archive-keyring`).
const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Modules are decompressed this many files per decompressor process.
const DECOMPRESS_BATCH: usize = 256;

/// A Debian kernel series the rig tests against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    /// Debian 12 (bookworm)'s own kernel: the release `linux-image-amd64` depends on.
    Bookworm61,
    /// The newest 6.12 kernel bookworm-security carries (`linux-image-6.12.N+deb12-amd64`).
    Bookworm612,
    /// Debian 11 (bullseye)'s kernel: the release bullseye's `linux-image-amd64` depends on.
    Bullseye510,
}

impl Series {
    /// The kernel version of the series: `"6.1"`, `"6.12"` or `"5.10"`.
    pub fn name(&self) -> &'static str {
        match self {
            Series::Bookworm61 => "6.1",
            Series::Bookworm612 => "6.12",
            Series::Bullseye510 => "5.10",
        }
    }

    /// Every series, oldest Debian release last.
    pub fn all() -> [Series; 3] {
        [Series::Bookworm61, Series::Bookworm612, Series::Bullseye510]
    }

    fn suite(self) -> Suite {
        match self {
            Series::Bookworm61 | Series::Bookworm612 => Suite::Bookworm,
            Series::Bullseye510 => Suite::Bullseye,
        }
    }
}

/// A downloaded, extracted and checked kernel.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// The series it was resolved for.
    pub series: Series,
    /// The kernel release (`uname -r`), e.g. `6.1.0-56-amd64`.
    pub release: String,
    /// The cache directory holding everything below: `kernels/<release>/`.
    pub dir: PathBuf,
    /// The bootable bzImage.
    pub vmlinuz: PathBuf,
    /// The matching unstripped ELF with DWARF (`.debug_info`).
    pub vmlinux: PathBuf,
    /// The extracted `lib/modules/<release>/` directory: modules decompressed, with a
    /// `modules.dep` (paths relative to it, plain `.ko`).
    pub modules: PathBuf,
    /// The GNU build id of `vmlinux`, lowercase hex: the booted guest's `/sys/kernel/notes`
    /// must carry the same one.
    pub build_id: String,
}

impl Kernel {
    /// The `.ko` file of module `name` (`-` and `_` alike, as for modprobe) under
    /// `modules/kernel/`, if the kernel has it as a module.
    pub fn module(&self, name: &str) -> Option<PathBuf> {
        let wanted = format!("{}.ko", name.replace('-', "_"));
        let mut pending = vec![self.modules.join("kernel")];
        while let Some(dir) = pending.pop() {
            for entry in fs::read_dir(&dir).ok()?.flatten() {
                let path = entry.path();
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    pending.push(path);
                } else if entry.file_name().to_string_lossy().replace('-', "_") == wanted {
                    return Some(path);
                }
            }
        }
        None
    }

    /// Whether module `name` is built into the kernel (listed in `modules.builtin`): e.g.
    /// `virtio_pci` on 6.12, a loadable module on 6.1.
    pub fn is_builtin(&self, name: &str) -> bool {
        let wanted = format!("{}.ko", name.replace('-', "_"));
        fs::read_to_string(self.modules.join("modules.builtin")).is_ok_and(|text| {
            text.lines().any(|line| line.rsplit('/').next().is_some_and(|f| f.replace('-', "_") == wanted))
        })
    }
}

/// The kernel of `series`, from the cache if it is complete there, else resolved,
/// downloaded, extracted and checked first (which needs the network, `apt-get`, `apt-cache`,
/// `dpkg-deb` and `tar`; ~1 GB of downloads per kernel).
pub fn fetch(series: Series) -> Result<Kernel> {
    let root = cache_dir().join("kernels");
    if let Some(kernel) = cached(series, &root) {
        return Ok(kernel);
    }
    fs::create_dir_all(&root).map_err(|e| rig_error!("cannot create {}: {e}", root.display()))?;
    let _lock = Lock::exclusive(&root.join(".lock"))?;
    if let Some(kernel) = cached(series, &root) {
        return Ok(kernel);
    }
    for tool in ["apt-get", "apt-cache", "dpkg-deb", "tar"] {
        if find_tool(tool).is_none() {
            return Err(rig_error!(
                "cannot fetch the Debian {} kernel: `{tool}` is not installed (the rig needs \
                 Debian's apt and dpkg)",
                series.name()
            ));
        }
    }
    let started = Instant::now();
    let download = match download(series, &root)? {
        Fetched::Downloaded(download) => download,
        Fetched::Cached(release) => {
            write_atomically(&release_file(&root, series), &format!("{release}\n"))?;
            return cached(series, &root)
                .ok_or_else(|| rig_error!("the cached kernel {release} is marked complete but unreadable"));
        }
    };
    let downloaded = started.elapsed();
    let kernel = extract(series, &download).inspect_err(|_| {
        let _ = fs::remove_dir_all(&download.dir);
    })?;
    write_atomically(&release_file(&root, series), &format!("{}\n", kernel.release))?;
    eprintln!(
        "kql-rig: {} {} ready in {}: downloaded in {:.1} s, extracted in {:.1} s",
        download.package,
        download.version,
        kernel.dir.display(),
        downloaded.as_secs_f64(),
        (started.elapsed() - downloaded).as_secs_f64()
    );
    Ok(kernel)
}

/// `kernels/<series>.release`: the release a series was resolved to.
fn release_file(root: &Path, series: Series) -> PathBuf {
    root.join(format!("{}.release", series.name()))
}

/// The cached kernel of `series`, if its release is pinned and its directory complete.
fn cached(series: Series, root: &Path) -> Option<Kernel> {
    let release = fs::read_to_string(release_file(root, series)).ok()?;
    let kernel = layout(series, release.trim(), &root.join(release.trim()), String::new());
    if !kernel.dir.join("complete").is_file() {
        return None;
    }
    let build_id = elf::build_id(&kernel.vmlinux).ok()?;
    Some(Kernel { build_id, ..kernel })
}

fn layout(series: Series, release: &str, dir: &Path, build_id: String) -> Kernel {
    Kernel {
        series,
        release: release.to_owned(),
        dir: dir.to_owned(),
        vmlinuz: dir.join("vmlinuz"),
        vmlinux: dir.join("vmlinux"),
        modules: dir.join("modules"),
        build_id,
    }
}

/// What resolving a series found: a release complete in the cache, or downloaded packages.
enum Fetched {
    Cached(String),
    Downloaded(Download),
}

/// The two packages of a kernel, downloaded into its cache directory.
struct Download {
    package: String,
    version: String,
    release: String,
    dir: PathBuf,
    image: PathBuf,
    dbg: PathBuf,
}

/// Resolves and downloads the packages of `series`, trying each apt configuration in turn.
fn download(series: Series, root: &Path) -> Result<Fetched> {
    let mut failures = Vec::new();
    let attempts: &[Option<Suite>] = match series.suite() {
        Suite::Bookworm => &[None, Some(Suite::Bookworm)],
        Suite::Bullseye => &[Some(Suite::Bullseye)],
    };
    for private in attempts {
        let apt = match private {
            None => Ok(Apt::system()),
            Some(suite) => Apt::private(root, *suite),
        };
        let attempt = apt.and_then(|apt| {
            download_with(series, &apt, root).map_err(|e| rig_error!("with {}: {e}", apt.label))
        });
        match attempt {
            Ok(download) => return Ok(download),
            Err(error) => failures.push(error.0),
        }
    }
    Err(rig_error!("cannot download the Debian {} kernel: {}", series.name(), failures.join("; then, ")))
}

fn download_with(series: Series, apt: &Apt, root: &Path) -> Result<Fetched> {
    let package = resolve(series, apt)?;
    let release = package.strip_prefix("linux-image-").unwrap_or(&package).to_owned();
    let dbg_package = format!("{package}-dbg");
    let version = apt.candidate(&package)?;
    let dbg_version = apt.candidate(&dbg_package)?;
    if dbg_version != version {
        return Err(rig_error!("{dbg_package} is at version {dbg_version} but {package} at {version}"));
    }
    let dir = root.join(&release);
    if dir.join("complete").is_file() && elf::build_id(&dir.join("vmlinux")).is_ok() {
        // Complete already (its series pin was deleted, or another series resolved to it).
        return Ok(Fetched::Cached(release));
    }
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| rig_error!("cannot remove {}: {e}", dir.display()))?;
    }
    fs::create_dir_all(&dir).map_err(|e| rig_error!("cannot create {}: {e}", dir.display()))?;
    eprintln!("kql-rig: downloading {package} and {dbg_package} {version} ({})", apt.label);
    let result = apt
        .get(&["download", &format!("{package}={version}"), &format!("{dbg_package}={version}")], &dir)
        .and_then(|_| {
            Ok(Fetched::Downloaded(Download {
                image: deb_in(&dir, &package)?,
                dbg: deb_in(&dir, &dbg_package)?,
                package,
                version,
                release,
                dir: dir.clone(),
            }))
        });
    if result.is_err() {
        let _ = fs::remove_dir_all(&dir);
    }
    result
}

/// The package name (`linux-image-<release>`) of the kernel of `series`.
fn resolve(series: Series, apt: &Apt) -> Result<String> {
    match series {
        Series::Bookworm61 | Series::Bullseye510 => {
            let prefix = match series {
                Series::Bookworm61 => "linux-image-6.1.0-",
                _ => "linux-image-5.10.0-",
            };
            let output = apt.cache(&["depends", "linux-image-amd64"])?;
            let depends = parse_depends(&output);
            depends.iter().find(|name| is_abi_package(name, prefix)).cloned().ok_or_else(|| {
                rig_error!(
                    "linux-image-amd64 depends on {} rather than a {prefix}N-amd64 kernel",
                    if depends.is_empty() { "nothing".to_owned() } else { depends.join(", ") }
                )
            })
        }
        Series::Bookworm612 => {
            let output = apt.cache(&["search", "--names-only", r"^linux-image-6\.12\."])?;
            newest_612(&output)
                .ok_or_else(|| rig_error!("no linux-image-6.12.N+deb12-amd64 package in the apt lists"))
        }
    }
}

/// `linux-image-6.1.0-56-amd64` for prefix `linux-image-6.1.0-`: the ABI number is digits.
fn is_abi_package(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix("-amd64"))
        .is_some_and(|abi| !abi.is_empty() && abi.bytes().all(|b| b.is_ascii_digit()))
}

/// The packages named by the `Depends:` lines of `apt-cache depends` output.
fn parse_depends(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|line| {
            let line = line.trim().trim_start_matches('|');
            let name = line.strip_prefix("Depends:")?.split_whitespace().next()?;
            Some(name.trim_matches(['<', '>']).to_owned())
        })
        .collect()
}

/// The `Candidate:` version of `apt-cache policy` output, unless `(none)`.
fn parse_candidate(output: &str) -> Option<String> {
    output
        .lines()
        .find_map(|line| line.trim().strip_prefix("Candidate:"))
        .map(str::trim)
        .filter(|version| !version.is_empty() && *version != "(none)")
        .map(str::to_owned)
}

/// The newest `linux-image-6.12.N+deb12-amd64` in `apt-cache search` output (by N), leaving
/// out meta, `-unsigned`, `-dbg`, `-rt` and `-cloud` packages.
fn newest_612(output: &str) -> Option<String> {
    output
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter_map(|name| {
            let patch = name.strip_prefix("linux-image-6.12.")?.strip_suffix("+deb12-amd64")?;
            if patch.is_empty() || !patch.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some((patch.parse::<u64>().ok()?, name))
        })
        .max()
        .map(|(_, name)| name.to_owned())
}

/// The `<package>_<version>_<arch>.deb` that `apt-get download` left in `dir`.
fn deb_in(dir: &Path, package: &str) -> Result<PathBuf> {
    let prefix = format!("{package}_");
    fs::read_dir(dir)?
        .flatten()
        .map(|entry| entry.path())
        .find(|path| {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with(&prefix) && name.ends_with(".deb")
        })
        .ok_or_else(|| rig_error!("apt-get download left no {package}_*.deb in {}", dir.display()))
}

/// Extracts the downloaded packages, checks the result, deletes the packages and marks the
/// directory complete.
fn extract(series: Series, download: &Download) -> Result<Kernel> {
    let Download { release, dir, .. } = download;
    let staging = dir.join("image");
    eprintln!("kql-rig: extracting {}", download.image.display());
    run(Command::new("dpkg-deb").arg("-x").arg(&download.image).arg(&staging))?;
    let kernel = layout(series, release, dir, String::new());
    rename(&staging.join(format!("boot/vmlinuz-{release}")), &kernel.vmlinuz)?;
    let modules = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|base| staging.join(base).join(release))
        .find(|path| path.is_dir())
        .ok_or_else(|| rig_error!("{} has no lib/modules/{release}/ directory", download.image.display()))?;
    rename(&modules, &kernel.modules)?;
    fs::remove_dir_all(&staging)?;
    decompress_modules(&kernel.modules)?;
    write_modules_dep(&kernel.modules)?;
    eprintln!("kql-rig: extracting vmlinux from {}", download.dbg.display());
    extract_vmlinux(&download.dbg, release, dir, &kernel.vmlinux)?;
    for deb in [&download.image, &download.dbg] {
        fs::remove_file(deb).map_err(|e| rig_error!("cannot remove {}: {e}", deb.display()))?;
    }

    if fs::metadata(&kernel.vmlinuz).map(|m| m.len()).unwrap_or(0) == 0 {
        return Err(rig_error!("{} is empty", kernel.vmlinuz.display()));
    }
    if !elf::has_section(&kernel.vmlinux, ".debug_info")? {
        return Err(rig_error!(
            "{} has no .debug_info section: {} carries no DWARF",
            kernel.vmlinux.display(),
            download.dbg.display()
        ));
    }
    let build_id = elf::build_id(&kernel.vmlinux)?;
    write_atomically(
        &dir.join("complete"),
        &format!(
            "package={}\nversion={}\nrelease={release}\nbuild_id={build_id}\n",
            download.package, download.version
        ),
    )?;
    Ok(Kernel { build_id, ..kernel })
}

/// Extracts only `./usr/lib/debug/boot/vmlinux-<release>` of the `-dbg` package to `to`.
/// `tar --occurrence` stops reading once it has the file, which ends `dpkg-deb` early.
fn extract_vmlinux(deb: &Path, release: &str, dir: &Path, to: &Path) -> Result<()> {
    let member = format!("./usr/lib/debug/boot/vmlinux-{release}");
    let staging = dir.join("dbg");
    fs::create_dir_all(&staging)?;
    let deb_errors = staging.join("dpkg-deb.stderr");
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .stderr(File::create(&deb_errors)?)
        .spawn()
        .map_err(|e| rig_error!("cannot run `dpkg-deb`: {e}"))?;
    let tar = Command::new("tar")
        .args(["-x", "--occurrence=1", "-f", "-", "-C"])
        .arg(&staging)
        .arg(&member)
        .stdin(dpkg.stdout.take().map(Stdio::from).unwrap_or_else(Stdio::null))
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| rig_error!("cannot run `tar`: {e}"))?;
    // Once tar has the file it stops reading: dpkg-deb then dies of SIGPIPE, which is fine.
    let dpkg_status = dpkg.wait()?;
    let extracted = staging.join(&member);
    if !tar.status.success() || !extracted.is_file() {
        return Err(rig_error!(
            "cannot extract {member} from {}: tar {}: {}; dpkg-deb {}: {}",
            deb.display(),
            tar.status,
            one_line(&tar.stderr),
            dpkg_status,
            one_line(&fs::read(&deb_errors).unwrap_or_default())
        ));
    }
    rename(&extracted, to)?;
    fs::remove_dir_all(&staging)?;
    Ok(())
}

/// Decompresses every `.ko.xz`, `.ko.zst` and `.ko.gz` under `modules` in place.
fn decompress_modules(modules: &Path) -> Result<()> {
    let files = files_under(modules)?;
    // (suffix, decompressor, its Debian package, arguments decompressing in place)
    let formats = [
        (".ko.xz", "xz", "xz-utils", &["-d", "-f", "-q", "--"][..]),
        (".ko.zst", "zstd", "zstd", &["-d", "-f", "-q", "--rm", "--"][..]),
        (".ko.gz", "gzip", "gzip", &["-d", "-f", "-q", "--"][..]),
    ];
    for (suffix, tool, package, args) in formats {
        let compressed: Vec<&PathBuf> =
            files.iter().filter(|path| path.to_string_lossy().ends_with(suffix)).collect();
        if compressed.is_empty() {
            continue;
        }
        ensure_tool(tool, package)?;
        eprintln!("kql-rig: decompressing {} {suffix} modules", compressed.len());
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_worker = compressed.len().div_ceil(workers);
        std::thread::scope(|scope| {
            let handles: Vec<_> = compressed
                .chunks(per_worker)
                .map(|share| {
                    scope.spawn(move || {
                        share
                            .chunks(DECOMPRESS_BATCH)
                            .try_for_each(|batch| run(Command::new(tool).args(args).args(batch)).map(drop))
                    })
                })
                .collect();
            handles.into_iter().try_for_each(|handle| {
                handle.join().unwrap_or_else(|_| Err(rig_error!("{tool} worker panicked")))
            })
        })?;
    }
    Ok(())
}

/// Writes `modules/modules.dep` as depmod would (the packages ship none: depmod runs when
/// they are installed): one `module: dependencies` line per module, paths relative to
/// `modules`, dependencies transitive and each before its own, from the `depends=` entry
/// modpost records in every module's `.modinfo`.
fn write_modules_dep(modules: &Path) -> Result<()> {
    let mut paths = BTreeMap::new(); // module name → relative path
    let mut direct = BTreeMap::new(); // relative path → names of direct dependencies
    for path in files_under(modules)? {
        let Ok(relative) = path.strip_prefix(modules) else {
            continue;
        };
        let relative = relative.to_string_lossy().into_owned();
        let Some(stem) = relative.rsplit('/').next().and_then(|f| f.strip_suffix(".ko")) else {
            continue;
        };
        let modinfo = elf::section_data(&path, ".modinfo")?.unwrap_or_default();
        let mut name = stem.replace('-', "_");
        let mut depends = Vec::new();
        for entry in modinfo.split(|&b| b == 0) {
            let entry = String::from_utf8_lossy(entry);
            if let Some(value) = entry.strip_prefix("name=") {
                name = value.replace('-', "_");
            } else if let Some(value) = entry.strip_prefix("depends=") {
                depends.extend(value.split(',').filter(|d| !d.is_empty()).map(|d| d.replace('-', "_")));
            }
        }
        paths.insert(name, relative.clone());
        direct.insert(relative, depends);
    }
    if direct.is_empty() {
        return Err(rig_error!("{} holds no .ko modules", modules.display()));
    }
    let mut text = String::new();
    for module in direct.keys() {
        // Post-order walk (dependencies first), reversed: each module before its dependencies.
        let mut order = Vec::new();
        let mut stack = vec![(module.as_str(), 0usize)];
        let mut seen = BTreeSet::from([module.as_str()]);
        while let Some((current, next)) = stack.pop() {
            let depends = direct.get(current).map_or(&[][..], Vec::as_slice);
            if let Some(name) = depends.get(next) {
                stack.push((current, next + 1));
                // A dependency missing from the tree is left out, as depmod does.
                if let Some(path) = paths.get(name)
                    && seen.insert(path.as_str())
                {
                    stack.push((path.as_str(), 0));
                }
            } else if current != module {
                order.push(current);
            }
        }
        order.reverse();
        text.push_str(module);
        text.push(':');
        for dependency in order {
            text.push(' ');
            text.push_str(dependency);
        }
        text.push('\n');
    }
    write_atomically(&modules.join("modules.dep"), &text)
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    Ok(files)
}

/// Installs `package` with the system's apt if `tool` is missing (root only).
fn ensure_tool(tool: &str, package: &str) -> Result<()> {
    if find_tool(tool).is_some() {
        return Ok(());
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(rig_error!("`{tool}` is not installed: install the Debian package {package}"));
    }
    eprintln!("kql-rig: installing {package} for `{tool}`");
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends", package])
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .map_err(|e| rig_error!("`{tool}` is not installed and installing {package} failed: {e}"))?;
    find_tool(tool)
        .map(drop)
        .ok_or_else(|| rig_error!("`{tool}` is still missing after installing {package}"))
}

/// `name` in `$PATH`, if there as an executable file.
fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| {
        fs::metadata(candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// A Debian suite the rig can keep private apt lists for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Suite {
    Bookworm,
    Bullseye,
}

impl Suite {
    fn name(self) -> &'static str {
        match self {
            Suite::Bookworm => "bookworm",
            Suite::Bullseye => "bullseye",
        }
    }

    /// The `sources.list` of the private lists: bullseye's main suite alone has its last
    /// 5.10 kernel with `-dbg`; bookworm needs bookworm-security for 6.12.
    fn sources(self) -> String {
        let line = |uri: &str, suite: &str| format!("deb [signed-by={DEBIAN_KEYRING}] {uri} {suite} main\n");
        match self {
            Suite::Bookworm => {
                line("http://deb.debian.org/debian", "bookworm")
                    + &line("http://deb.debian.org/debian-security", "bookworm-security")
            }
            Suite::Bullseye => line("http://deb.debian.org/debian", "bullseye"),
        }
    }
}

/// How to run apt: the system's configuration or private lists, as `-o` options.
struct Apt {
    label: String,
    options: Vec<String>,
}

impl Apt {
    fn system() -> Apt {
        Apt { label: "the system's apt lists".to_owned(), options: sandbox_options() }
    }

    /// Private lists for `suite` in `kernels/apt/<suite>/`, updated now.
    fn private(root: &Path, suite: Suite) -> Result<Apt> {
        let dir = root.join("apt").join(suite.name());
        let label = format!("private {} apt lists in {}", suite.name(), dir.display());
        let lists = dir.join("lists");
        fs::create_dir_all(lists.join("partial"))
            .map_err(|e| rig_error!("cannot create {}: {e}", lists.display()))?;
        let sources = dir.join("sources.list");
        fs::write(&sources, suite.sources())
            .map_err(|e| rig_error!("cannot write {}: {e}", sources.display()))?;
        let mut options = sandbox_options();
        for (key, value) in [
            ("Dir::Etc::sourcelist", sources.display().to_string()),
            ("Dir::Etc::sourceparts", "/dev/null".to_owned()),
            ("Dir::State::Lists", lists.display().to_string()),
            // No binary caches (60 MB): apt builds them in memory, in under a second.
            ("Dir::Cache::pkgcache", String::new()),
            ("Dir::Cache::srcpkgcache", String::new()),
        ] {
            options.extend(["-o".to_owned(), format!("{key}={value}")]);
        }
        let apt = Apt { label, options };
        // apt-get update exits 0 when it could not fetch an index ("W: Failed to fetch ...",
        // "W: Some index files failed to download"): its messages say whether it worked.
        let output = apt.get(&["update"], &dir).map_err(|e| rig_error!("with {}: {e}", apt.label))?;
        if let Some(errors) = update_errors(&output) {
            return Err(rig_error!("with {}: `apt-get update` failed: {errors}", apt.label));
        }
        Ok(apt)
    }

    /// `apt-cache <args>`'s standard output.
    fn cache(&self, args: &[&str]) -> Result<String> {
        run(Command::new("apt-cache").args(&self.options).args(args)).map(|(out, _)| out)
    }

    /// `apt-get -q <args>` run in `dir`; its standard error.
    fn get(&self, args: &[&str], dir: &Path) -> Result<String> {
        run(Command::new("apt-get").arg("-q").args(&self.options).args(args).current_dir(dir))
            .map(|(_, err)| err)
    }

    /// The candidate version of `package`.
    fn candidate(&self, package: &str) -> Result<String> {
        parse_candidate(&self.cache(&["policy", package])?)
            .ok_or_else(|| rig_error!("apt has no candidate version of {package}"))
    }
}

/// The error and failure-warning lines of `apt-get update`'s messages, on one line.
fn update_errors(messages: &str) -> Option<String> {
    let failures = ["E:", "W: Failed to fetch", "W: GPG error", "W: The repository", "W: Some index"];
    let lines: Vec<&str> = messages
        .lines()
        .map(str::trim)
        .filter(|line| failures.iter().any(|failure| line.starts_with(failure)))
        .collect();
    (!lines.is_empty()).then(|| lines.join(" | "))
}

/// As root, apt would download as `_apt`, which cannot write to a cache in root's home.
fn sandbox_options() -> Vec<String> {
    if nix::unistd::geteuid().is_root() {
        vec!["-o".to_owned(), "APT::Sandbox::User=root".to_owned()]
    } else {
        Vec::new()
    }
}

/// Runs `command` in the C locale; its standard output and error, or an error with the
/// command (apt's `-o` options left out) and its standard error on one line.
fn run(command: &mut Command) -> Result<(String, String)> {
    let mut shown = vec![command.get_program().to_string_lossy().into_owned()];
    let mut args = command.get_args().map(|arg| arg.to_string_lossy().into_owned());
    while let Some(arg) = args.next() {
        if arg == "-o" {
            args.next();
        } else {
            shown.push(arg);
        }
    }
    let shown = shown.join(" ");
    let output = command
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| rig_error!("cannot run `{shown}`: {e}"))?;
    if !output.status.success() {
        return Err(rig_error!("`{shown}` failed ({}): {}", output.status, one_line(&output.stderr)));
    }
    Ok((
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

/// A tool's messages as one line.
fn one_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if lines.is_empty() { "(no message)".to_owned() } else { lines.join(" | ") }
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|e| rig_error!("cannot move {} to {}: {e}", from.display(), to.display()))
}

/// Writes `path` through a temporary file and a rename, so readers never see it partial.
fn write_atomically(path: &Path, contents: &str) -> Result<()> {
    let temporary = path.with_extension("tmp");
    fs::write(&temporary, contents).map_err(|e| rig_error!("cannot write {}: {e}", temporary.display()))?;
    rename(&temporary, path)
}

/// An exclusive `flock` held until dropped (closing the file releases it).
pub(crate) struct Lock {
    _file: File,
}

impl Lock {
    /// Holds an exclusive `flock` on `path` (created if need be) until dropped.
    pub(crate) fn exclusive(path: &Path) -> Result<Lock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| rig_error!("cannot open {}: {e}", path.display()))?;
        file.lock().map_err(|e| rig_error!("cannot lock {}: {e}", path.display()))?;
        Ok(Lock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEARCH_612: &str = "\
linux-image-6.12-amd64-dbg - Debugging symbols for Linux amd64 configuration (meta-package)
linux-image-6.12-amd64-signed-template - Template for signed linux-image packages for amd64
linux-image-6.12.107+deb12-amd64-dbg - Debug symbols for linux-image-6.12.107+deb12-amd64
linux-image-6.12.107+deb12-amd64-unsigned - Linux 6.12 for 64-bit PCs
linux-image-6.12.117+deb12-cloud-amd64-unsigned - Linux 6.12 for x86-64 cloud
linux-image-6.12.117+deb12-rt-amd64-dbg - Debug symbols for linux-image-6.12.117+deb12-rt-amd64
linux-image-6.12.117+deb12-amd64-dbg - Debug symbols for linux-image-6.12.117+deb12-amd64
linux-image-6.12.117+deb12-amd64-unsigned - Linux 6.12 for 64-bit PCs
linux-image-6.12.999+deb12-rt-amd64 - Linux 6.12 for 64-bit PCs (signed), PREEMPT_RT
linux-image-6.12.999+deb12-cloud-amd64 - Linux 6.12 for x86-64 cloud (signed)
linux-image-6.12-amd64 - Linux for 64-bit PCs (meta-package)
linux-image-6.12.100+deb12-amd64 - Linux 6.12 for 64-bit PCs (signed)
linux-image-6.12.117+deb12-amd64 - Linux 6.12 for 64-bit PCs (signed)
linux-image-6.12.99+deb12-amd64 - Linux 6.12 for 64-bit PCs (signed)
linux-image-6.12.113+deb12-amd64 - Linux 6.12 for 64-bit PCs (signed)
";

    #[test]
    fn newest_612_is_picked_numerically_among_plain_amd64_images() {
        assert_eq!(newest_612(SEARCH_612).as_deref(), Some("linux-image-6.12.117+deb12-amd64"));
        assert_eq!(newest_612("linux-image-6.12-amd64 - meta\n"), None);
        assert_eq!(newest_612(""), None);
    }

    #[test]
    fn depends_and_candidate_are_parsed() {
        let depends = "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n \
                       |Depends: <linux-image-virtual>\n  Recommends: firmware\n";
        let names = parse_depends(depends);
        assert_eq!(names, ["linux-image-6.1.0-56-amd64", "linux-image-virtual"]);
        assert!(is_abi_package(&names[0], "linux-image-6.1.0-"));
        assert!(!is_abi_package(&names[0], "linux-image-5.10.0-"));
        assert!(is_abi_package("linux-image-5.10.0-32-amd64", "linux-image-5.10.0-"));
        assert!(!is_abi_package("linux-image-6.1.0-56-cloud-amd64", "linux-image-6.1.0-"));
        assert!(!is_abi_package("linux-image-6.1.0--amd64", "linux-image-6.1.0-"));

        let policy = "linux-image-6.1.0-56-amd64:\n  Installed: (none)\n  Candidate: 6.1.192-2\n  \
                      Version table:\n     6.1.192-2 500\n";
        assert_eq!(parse_candidate(policy).as_deref(), Some("6.1.192-2"));
        assert_eq!(parse_candidate("x:\n  Installed: (none)\n  Candidate: (none)\n"), None);
        assert_eq!(parse_candidate(""), None);
    }

    #[test]
    fn modules_dep_lists_transitive_dependencies_before_theirs() {
        let dir = std::env::temp_dir().join(format!("kql-rig-modules-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let module = |path: &str, modinfo: &str| {
            let path = dir.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            let elf = crate::elf::tests::Builder::new(1)
                .section(".modinfo", 1, modinfo.replace(';', "\0").into_bytes())
                .build();
            fs::write(path, elf).unwrap();
        };
        module("kernel/fs/9p/9p.ko", "license=GPL;depends=9pnet,netfs;name=9p;");
        module("kernel/net/9p/9pnet.ko", "depends=;name=9pnet;");
        module("kernel/fs/netfs/netfs.ko", "depends=fscache;name=netfs;");
        module("kernel/fs/fscache/fscache.ko", "name=fscache;");
        module("kernel/net/9p/9pnet_virtio.ko", "depends=virtio_ring,9pnet;name=9pnet_virtio;");
        module("kernel/drivers/virtio/virtio_ring.ko", "name=virtio_ring;");
        module("kernel/drivers/firmware/qemu-fw-cfg.ko", "depends=unknown;");
        fs::write(dir.join("modules.order"), "kernel/fs/9p/9p.ko\n").unwrap();
        write_modules_dep(&dir).unwrap();
        let text = fs::read_to_string(dir.join("modules.dep")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.contains(&"kernel/drivers/firmware/qemu-fw-cfg.ko:"), "{text}");
        assert!(lines.contains(&"kernel/fs/fscache/fscache.ko:"), "{text}");
        assert!(lines.contains(&"kernel/fs/netfs/netfs.ko: kernel/fs/fscache/fscache.ko"));
        assert!(
            lines.contains(
                &"kernel/fs/9p/9p.ko: kernel/fs/netfs/netfs.ko kernel/fs/fscache/fscache.ko \
                  kernel/net/9p/9pnet.ko"
            ),
            "{text}"
        );
        assert!(lines.contains(
            &"kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko \
              kernel/drivers/virtio/virtio_ring.ko"
        ));
        assert_eq!(lines.len(), 7, "{text}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn update_failures_are_found_in_apt_messages() {
        let unreachable = "W: Failed to fetch http://deb.debian.org/debian/dists/bullseye/InRelease  \
                           Could not connect to 127.0.0.1:9 (127.0.0.1). - connect (111: Connection \
                           refused)\nW: Some index files failed to download. They have been \
                           ignored, or old ones used instead.\n";
        let errors = update_errors(unreachable).unwrap();
        assert!(errors.starts_with("W: Failed to fetch http://deb.debian.org/"), "{errors}");
        assert!(errors.contains(" | W: Some index files failed"), "{errors}");
        assert_eq!(update_errors("W: Download is performed unsandboxed as root\n"), None);
        assert_eq!(update_errors(""), None);
    }

    #[test]
    fn series_names() {
        let names: Vec<_> = Series::all().iter().map(Series::name).collect();
        assert_eq!(names, ["6.1", "6.12", "5.10"]);
        assert!(Suite::Bullseye.sources().contains(" bullseye main"));
        assert!(Suite::Bookworm.sources().contains("debian-security bookworm-security main"));
    }

    #[test]
    fn run_reports_the_failing_command_on_one_line() {
        let error = run(Command::new("sh").args(["-c", "echo one >&2; echo two >&2; exit 3"])).unwrap_err().0;
        assert!(error.contains("`sh -c"), "{error}");
        assert!(error.contains("one | two"), "{error}");
        let error = run(&mut Command::new("/nonexistent/kql-tool")).unwrap_err().0;
        assert!(error.starts_with("cannot run `/nonexistent/kql-tool`"), "{error}");
        assert!(find_tool("sh").is_some());
        assert!(find_tool("kql-no-such-tool").is_none());
    }

    /// Fetches both bookworm kernels (cold: ~2 GB of downloads, about a minute here; warm:
    /// instant) and checks what the rig needs of them.
    #[test]
    fn fetch_bookworm_61_and_612() {
        fetch_and_check(Series::Bookworm61);
        fetch_and_check(Series::Bookworm612);
    }

    /// Fetches bullseye's 5.10, the pre-5.19 listener layout, through private apt lists.
    #[test]
    fn fetch_bullseye_510() {
        fetch_and_check(Series::Bullseye510);
    }

    fn fetch_and_check(series: Series) {
        let started = Instant::now();
        let kernel = fetch(series).unwrap_or_else(|e| panic!("{}: {e}", series.name()));
        eprintln!(
            "{}: {} in {:.2} s, build id {}",
            series.name(),
            kernel.release,
            started.elapsed().as_secs_f64(),
            kernel.build_id
        );
        assert_eq!(kernel.series, series);
        assert!(kernel.release.starts_with(&format!("{}.", series.name())), "{kernel:?}");
        assert!(fs::metadata(&kernel.vmlinuz).unwrap().len() > 1 << 20, "{kernel:?}");
        assert_eq!(kernel.build_id.len(), 40, "{kernel:?}");
        assert_eq!(elf::build_id(&kernel.vmlinux).unwrap(), kernel.build_id);
        assert!(elf::has_section(&kernel.vmlinux, ".debug_info").unwrap());
        for module in ["virtio_pci", "9p", "9pnet_virtio", "qemu_fw_cfg"] {
            match kernel.module(module) {
                Some(path) => {
                    let head = fs::read(&path).unwrap();
                    assert!(head.starts_with(b"\x7fELF"), "{} is no plain ELF", path.display());
                    eprintln!("{}: {module}: {}", kernel.release, path.display());
                }
                None if kernel.is_builtin(module) => {
                    eprintln!("{}: {module}: built in", kernel.release);
                }
                None => panic!("{}: {module} is neither a module nor built in", kernel.release),
            }
        }
        if series == Series::Bookworm61 {
            assert!(kernel.module("virtio_pci").is_some(), "6.1 has virtio_pci as a module");
        }
        let compressed = files_under(&kernel.modules)
            .unwrap()
            .into_iter()
            .filter(|path| path.to_string_lossy().contains(".ko."))
            .count();
        assert_eq!(compressed, 0, "{}: compressed modules left", kernel.release);
        let dep = fs::read_to_string(kernel.modules.join("modules.dep")).unwrap();
        assert!(dep.lines().any(|l| l.starts_with("kernel/fs/9p/9p.ko: ")), "{dep}");
        let started = Instant::now();
        let again = fetch(series).unwrap();
        assert!(started.elapsed().as_secs_f64() < 1.0, "a warm fetch takes no time");
        assert_eq!((again.release, again.build_id), (kernel.release, kernel.build_id));
    }
}

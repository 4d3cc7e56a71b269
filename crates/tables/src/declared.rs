//! Declared kernel tables: `CREATE KERNEL TABLE` statements from three places — shipped in
//! the binary (the repository's `tables/*.sql`), the user's `$XDG_CONFIG_HOME/kql/tables/`
//! and `--tables DIR`, and typed in a session — each a table like the hand-written ones.
//!
//! The declaration is the table's schema, whatever fills it: its kernel walk
//! ([`kql_declare`]), or on a live host without one the Rust host source paired with it by
//! name ([`HostSource`]), which must fill exactly the declared columns.
//!
//! A table's spec is `'static`, like the built-in tables': a declaration's is built once
//! per table and never freed (a few hundred bytes per `CREATE KERNEL TABLE`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{ArrayRef, new_null_array};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use kql_declare::bind::{Binder, Plan};
use kql_declare::walk::{self, Budget};
use kql_declare::{Declaration, DeclareError};
use kql_drgn::ErrorKind;
use kql_engine::{Column, ColumnType, KernelTable, ScanRequest, Scanned, Source, SourceKind, TableSpec};
use kql_kernel::{TypeSource, Types};

use crate::kernel_walk;
use crate::target::{Binding, Target};
use crate::{kernel_modules, mounts, net_addresses, net_devices};

/// The largest declarations file read (the shipped ones are a few KiB).
const MAX_DECLARATIONS_BYTES: u64 = 4 << 20;

mod shipped {
    include!(concat!(env!("OUT_DIR"), "/declared_tables.rs"));
}

/// A Rust source of a declared table on the live host, for when no kernel walk is possible.
pub struct HostSource {
    /// The declared table it fills.
    pub table: &'static str,
    /// What it reads.
    pub kind: SourceKind,
    /// What it reads, in a phrase.
    pub doc: &'static str,
    /// Fills every column of `spec` (the declaration's), or fails naming one it cannot.
    pub scan: fn(&TableSpec, &ScanRequest) -> Result<Scanned>,
}

/// The rows a host source read as the declared table's columns: `column` fills each by name,
/// and `address` (a kernel address no host file gives) is NULL.
pub fn host_batch<R>(
    spec: &TableSpec,
    rows: &[R],
    column: fn(&str, &[R]) -> Result<ArrayRef>,
) -> Result<Scanned> {
    let array = |name: &str| match name {
        kql_declare::bind::ADDRESS => Ok(new_null_array(&DataType::UInt64, rows.len())),
        name => column(name, rows),
    };
    let columns = spec.columns.iter().map(|c| array(c.name)).collect::<Result<Vec<_>>>()?;
    Ok(Scanned { batch: RecordBatch::try_new(spec.schema(), columns)?, warnings: Vec::new() })
}

/// Every host source, one line each.
const HOST_SOURCES: &[&HostSource] =
    &[&kernel_modules::HOST, &mounts::HOST, &net_devices::HOST, &net_addresses::HOST];

/// A declaration and where it came from.
#[derive(Debug)]
pub struct Declared {
    /// The statement.
    pub declaration: Declaration,
    /// `shipped: tables/mounts.sql`, a file's path, or `this session`.
    pub origin: String,
}

/// The declarations in use, by name; a later one replaces an earlier one of the same name.
#[derive(Debug, Clone, Default)]
pub struct Declarations {
    list: Vec<Arc<Declared>>,
}

impl Declarations {
    /// The shipped declarations, then the user's directory's, then those of `dirs`, with one
    /// line per file of the user's directory that cannot be read or parsed (it is skipped: a
    /// stale file there must not stop every kql). A bad file (or directory) of `dirs`, which
    /// the user named on purpose, is an error: its line, and how many more there are.
    pub fn load(dirs: &[PathBuf]) -> Result<(Declarations, Vec<String>), String> {
        let mut declarations = Declarations::shipped();
        let warnings = match user_dir().filter(|dir| dir.is_dir()) {
            Some(dir) => declarations.load_dir(&dir),
            None => Vec::new(),
        };
        let problems: Vec<String> = dirs.iter().flat_map(|dir| declarations.load_dir(dir)).collect();
        match &problems[..] {
            [] => Ok((declarations, warnings)),
            [only] => Err(format!("--tables: {only}")),
            [first, more @ ..] => Err(format!("--tables: {first} (and {} more bad files)", more.len())),
        }
    }

    /// The declarations shipped in the binary.
    pub fn shipped() -> Declarations {
        let mut declarations = Declarations::default();
        for (file, text) in shipped::DECLARED {
            let parsed = kql_declare::parser::parse(text).expect("shipped declarations parse (tested)");
            for declaration in parsed {
                declarations.add(declaration, format!("shipped: tables/{file}.sql"));
            }
        }
        declarations
    }

    /// Every `.sql` file of `dir`, in name order; one line per file (or the directory) that
    /// cannot be read.
    fn load_dir(&mut self, dir: &Path) -> Vec<String> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => return vec![format!("{}: {e}", dir.display())],
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
            .collect();
        files.sort();
        let mut problems = Vec::new();
        for file in files {
            let parsed = read_declarations(&file)
                .and_then(|text| kql_declare::parser::parse(&text).map_err(|e| e.to_string()));
            match parsed {
                Ok(declarations) => {
                    for declaration in declarations {
                        self.add(declaration, file.display().to_string());
                    }
                }
                Err(problem) => problems.push(format!("{}: {problem}", file.display())),
            }
        }
        problems
    }

    /// Adds `declaration`, replacing one of the same name.
    pub fn add(&mut self, declaration: Declaration, origin: String) {
        self.list.retain(|d| d.declaration.name != declaration.name);
        self.list.push(Arc::new(Declared { declaration, origin }));
    }

    /// Removes the declaration `name`; whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.list.len();
        self.list.retain(|d| d.declaration.name != name);
        self.list.len() != before
    }

    /// The declaration `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Declared>> {
        self.list.iter().find(|d| d.declaration.name == name)
    }

    /// Every declaration, in load order.
    pub fn all(&self) -> &[Arc<Declared>] {
        &self.list
    }
}

/// The text of a declarations file: a regular file (a FIFO would block, a device never end)
/// of at most [`MAX_DECLARATIONS_BYTES`]; the error is a phrase.
fn read_declarations(file: &Path) -> Result<String, String> {
    let metadata = std::fs::metadata(file).map_err(|e| e.to_string())?;
    if !metadata.is_file() {
        return Err("not a regular file".into());
    }
    if metadata.len() > MAX_DECLARATIONS_BYTES {
        return Err(format!("larger than the {} MiB kql reads", MAX_DECLARATIONS_BYTES >> 20));
    }
    let text = std::fs::read_to_string(file).map_err(|e| e.to_string())?;
    match text.find('\0') {
        Some(at) => Err(format!("a NUL byte at offset {at}: binary, not SQL")),
        None => Ok(text),
    }
}

/// `$XDG_CONFIG_HOME/kql/tables`, else `~/.config/kql/tables`.
pub fn user_dir() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(config.join("kql").join("tables"))
}

/// A declared table on one target.
pub struct DeclaredTable {
    target: Arc<Target>,
    declared: Arc<Declared>,
    catalog: Declarations,
    spec: &'static TableSpec,
    binding: Binding,
    host: Option<&'static HostSource>,
    /// The plan, bound at the first scan for the binding's type source.
    plan: Mutex<Option<(TypeSource, Arc<Plan>)>>,
}

impl std::fmt::Debug for DeclaredTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeclaredTable").field("name", &self.spec.name).finish()
    }
}

impl DeclaredTable {
    /// The table `declared` on `target`; `catalog` holds the parents it may name.
    pub fn on(target: &Arc<Target>, declared: &Arc<Declared>, catalog: &Declarations) -> DeclaredTable {
        let declaration = &declared.declaration;
        let host = HOST_SOURCES.iter().copied().find(|h| h.table == declaration.name);
        let plan = target.with_preferred_types(|types| bind(types, declaration, catalog).ok()).flatten();
        let spec = leak_spec(declaration, plan.as_ref(), catalog, host);
        let probe = |types: &Types| {
            bind(types, declaration, catalog)
                .map(drop)
                .map_err(|e| kql_drgn::Error::new(ErrorKind::Lookup, e.to_string()))
        };
        target.forget(spec.name);
        let binding = target.bind(spec, &probe);
        DeclaredTable {
            target: Arc::clone(target),
            declared: Arc::clone(declared),
            catalog: catalog.clone(),
            spec,
            binding,
            host,
            plan: Mutex::new(None),
        }
    }

    /// Why this table cannot be filled on its target, if it cannot.
    pub fn failure(&self) -> Option<String> {
        match (self.binding.source.kind, &self.binding.failure) {
            (_, Some(failure)) => Some(failure.clone()),
            (SourceKind::Drgn, None) if self.binding.types.is_none() => Some(format!(
                "{}: it is a kernel walk, and libdrgn cannot read the {}: {}",
                self.spec.name,
                self.target.description(),
                self.target.kernel_unavailable().unwrap_or("no kernel types")
            )),
            _ => None,
        }
    }

    fn plan(&self, types: &Types, source: TypeSource) -> Result<Arc<Plan>> {
        let mut slot = self.plan.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((bound_for, plan)) = slot.as_ref()
            && *bound_for == source
        {
            return Ok(Arc::clone(plan));
        }
        let plan = Arc::new(
            bind(types, &self.declared.declaration, &self.catalog)
                .map_err(|e| DataFusionError::Execution(format!("{}: {e}", self.spec.name)))?,
        );
        *slot = Some((source, Arc::clone(&plan)));
        Ok(plan)
    }

    fn walk(&self, request: &ScanRequest) -> Result<Scanned> {
        if let Some(failure) = self.failure() {
            return Err(DataFusionError::Execution(failure));
        }
        let source = self.binding.types.as_ref().map(|(source, _)| *source);
        let (batch, warnings) = kernel_walk::walk(&self.target, &self.binding, |types| {
            let plan = self.plan(types, source.unwrap_or(TypeSource::Dwarf))?;
            let wanted = walk::wanted(&request.keys, &plan);
            let scanned = walk::scan(&plan, types, &wanted, Budget::default())
                .map_err(|e| DataFusionError::Execution(format!("{}: {e}", self.spec.name)))?;
            Ok((RecordBatch::try_new(self.spec.schema(), scanned.columns)?, scanned.warnings))
        })?;
        Ok(Scanned { batch, warnings })
    }
}

impl KernelTable for DeclaredTable {
    fn spec(&self) -> &'static TableSpec {
        self.spec
    }

    fn source(&self) -> &'static Source {
        self.binding.source
    }

    fn types(&self) -> Option<String> {
        self.binding.types.as_ref().map(|(source, origin)| format!("{}: {origin}", source.name()))
    }

    fn origin(&self) -> String {
        self.declared.origin.clone()
    }

    fn declaration(&self) -> Option<&str> {
        Some(&self.declared.declaration.text)
    }

    fn bind_failure(&self) -> Option<&str> {
        self.binding.failure.as_deref()
    }

    fn scan(&self, request: &ScanRequest) -> Result<Scanned> {
        let mut scanned = match (self.binding.source.kind, self.host) {
            (SourceKind::Drgn, _) => self.walk(request)?,
            (_, Some(host)) => {
                let mut scanned = (host.scan)(self.spec, request)?;
                scanned.warnings.splice(0..0, self.target.take_fallback_note());
                scanned
            }
            (kind, None) => {
                return Err(DataFusionError::Execution(format!(
                    "{}: no {} source",
                    self.spec.name,
                    kind.name()
                )));
            }
        };
        if let Some(note) = self.target.take_note(self.spec.name) {
            scanned.warnings.insert(0, note);
        }
        Ok(scanned)
    }
}

/// `declaration` bound to the kernel `types` sees.
fn bind(
    types: &Types,
    declaration: &Declaration,
    catalog: &Declarations,
) -> std::result::Result<Plan, DeclareError> {
    let parents = |name: &str| catalog.get(name).map(|d| d.declaration.clone());
    Binder::new(types, &parents).bind(declaration)
}

/// The spec of a declared table: its columns typed as written, else as `plan` inferred
/// them, else (no kernel to bind to) as text.
fn leak_spec(
    declaration: &Declaration,
    plan: Option<&Plan>,
    catalog: &Declarations,
    host: Option<&'static HostSource>,
) -> &'static TableSpec {
    let inferred: HashMap<String, ColumnType> =
        plan.map(|p| p.output().into_iter().collect()).unwrap_or_default();
    let mut columns = Vec::new();
    for (parent, key) in inherited_keys(declaration, catalog) {
        let ty = key.sql_type.or(inferred.get(&key.name).copied()).unwrap_or(ColumnType::Utf8);
        let doc = format!("{} (key of the parent table {parent})", key.doc);
        columns.push(Column::new(leak(&key.name), ty, leak(&doc)).key().nullable());
    }
    for column in &declaration.columns {
        let ty = column.sql_type.or(inferred.get(&column.name).copied()).unwrap_or(ColumnType::Utf8);
        let spec = Column::new(leak(&column.name), ty, leak(&column.doc)).nullable();
        columns.push(if column.key { spec.key() } else { spec });
    }
    let object = plan.map_or_else(|| "object".to_string(), |p| p.object_type.clone());
    let address_doc = format!("kernel address of the row's {object}");
    columns.push(Column::new(kql_declare::bind::ADDRESS, ColumnType::UInt64, leak(&address_doc)).nullable());
    let walk_doc = format!("kernel walk declared in kql's language: {}", walk_summary(declaration));
    let mut sources = vec![Source { kind: SourceKind::Drgn, doc: leak(&walk_doc) }];
    sources.extend(host.map(|h| Source { kind: h.kind, doc: h.doc }));
    Box::leak(Box::new(TableSpec {
        name: leak(&declaration.name),
        doc: leak(&declaration.doc),
        columns: Vec::leak(columns),
        sources: Vec::leak(sources),
    }))
}

/// The key columns a table inherits from its parents, nearest parent last, with the
/// parent's name.
fn inherited_keys(
    declaration: &Declaration,
    catalog: &Declarations,
) -> Vec<(String, kql_declare::ast::ColumnDecl)> {
    let mut keys = Vec::new();
    let mut parent = declaration.parent.as_ref();
    let mut seen = vec![declaration.name.as_str()];
    while let Some(reference) = parent {
        if seen.contains(&reference.table.as_str()) {
            break; // a cycle: binding reports it
        }
        seen.push(&reference.table);
        let Some(declared) = catalog.get(&reference.table) else { break };
        let own = declared.declaration.columns.iter().filter(|c| c.key).cloned();
        let mut level: Vec<_> = own.map(|c| (reference.table.clone(), c)).collect();
        level.append(&mut keys);
        keys = level;
        parent = declared.declaration.parent.as_ref();
    }
    keys
}

/// The containers walked, e.g. `LIST OF struct module | RBTREE OF struct mount`, each
/// `UNION` part's after its own `UNION`.
fn walk_summary(declaration: &Declaration) -> String {
    let step = |s: &kql_declare::ast::Step| match &s.of {
        Some(of) => format!("{} OF {}", s.kind.keyword(), of.name),
        None => s.kind.keyword().to_string(),
    };
    let walk = |walk: &[kql_declare::ast::Chain]| {
        let chains: Vec<String> =
            walk.iter().map(|chain| chain.iter().map(step).collect::<Vec<_>>().join(" THEN ")).collect();
        chains.join(" | ")
    };
    let parts = declaration.union.iter().map(|part| walk(&part.walk));
    std::iter::once(walk(&declaration.walk)).chain(parts).collect::<Vec<_>>().join(" UNION ")
}

fn leak(text: &str) -> &'static str {
    Box::leak(text.to_string().into_boxed_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped tables' schemas do not depend on the kernel: every column is typed and
    /// described, and no name is taken twice or by a hand-written table.
    #[test]
    fn every_shipped_declaration_is_typed_documented_and_unique() {
        let declarations = Declarations::shipped();
        assert_eq!(declarations.all().len(), shipped::DECLARED.len(), "one declaration per file");
        for (file, _) in shipped::DECLARED {
            let declared =
                declarations.get(file).unwrap_or_else(|| panic!("tables/{file}.sql declares {file}"));
            let declaration = &declared.declaration;
            assert!(!declaration.doc.is_empty(), "{file}: the table's description");
            for column in &declaration.columns {
                assert!(column.sql_type.is_some(), "{file}.{}: a written type", column.name);
                assert!(!column.doc.is_empty(), "{file}.{}: a description", column.name);
            }
        }
        let built_in = ["tcp_listeners", "proc_fds", "processes", "threads"];
        assert!(declarations.all().iter().all(|d| !built_in.contains(&d.declaration.name.as_str())));
    }

    /// Each host source fills exactly its declaration's columns, with their types.
    #[test]
    fn host_sources_fill_the_declared_columns() {
        let declarations = Declarations::shipped();
        for host in HOST_SOURCES {
            let declared = declarations.get(host.table).expect("a host source pairs with a shipped table");
            let spec = leak_spec(&declared.declaration, None, &declarations, Some(host));
            let scanned =
                (host.scan)(spec, &ScanRequest::default()).expect("the host source scans this host");
            assert_eq!(scanned.batch.schema(), spec.schema(), "{}", host.table);
        }
    }
}

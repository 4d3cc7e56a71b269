//! An object that several slots hold is a row per slot: over the rig's 6.1 `basic` vmcore,
//! the fd array of each process, declared as a child ARRAY of pointers. The kernel opens
//! `/dev/console` once for init and dups it to fds 1 and 2 (`console_on_rootfs`), so PID 1's
//! fds 0, 1 and 2 are one `struct file`: three rows, not one, and no warning (a walk keeps
//! one row per object only where a container can hold an object once, as a list does).

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{Int32Type, UInt64Type};
use kql_declare::bind::Binder;
use kql_declare::walk::{Budget, Wanted, scan};
use kql_kernel::TypeSource;

mod common;
use common::{basic_vmcore, open};

const DECLARATIONS: &str = "
CREATE KERNEL TABLE processes 'every process'
FROM LIST CAST(init_task AS struct task_struct).tasks OF struct task_struct VIA tasks
COLUMNS (pid INT KEY = pid);

CREATE KERNEL TABLE open_files 'open files of every process, one row per fd'
PARENT processes AS p
FROM ARRAY p.files->fdt->fd COUNT p.files->fdt->max_fds OF struct file
COLUMNS (
  fd   BIGINT UNSIGNED KEY = @index,
  file BIGINT UNSIGNED     = addr(@)
);";

#[test]
fn a_file_in_three_fd_slots_is_three_rows() {
    let kernel = open(&basic_vmcore());
    let types = kernel.types(TypeSource::Btf).unwrap();
    let declarations = kql_declare::parser::parse(DECLARATIONS).expect("the declarations parse");
    let processes = declarations[0].clone();
    let plan = Binder::new(&types, &|name| (name == "processes").then(|| processes.clone()))
        .bind(&declarations[1])
        .expect("open_files binds");
    let scanned = scan(&plan, &types, &Wanted::new(), Budget::default()).expect("the scan");
    assert!(scanned.warnings.is_empty(), "{:?}", scanned.warnings);
    let pids = scanned.columns[0].as_primitive::<Int32Type>();
    let fds = scanned.columns[1].as_primitive::<UInt64Type>();
    let files = scanned.columns[2].as_primitive::<UInt64Type>();
    let init: Vec<(u64, u64)> = (0..pids.len())
        .filter(|&row| pids.value(row) == 1)
        .map(|row| (fds.value(row), files.value(row)))
        .collect();
    let console: Vec<u64> = init.iter().filter(|(fd, _)| *fd <= 2).map(|(_, file)| *file).collect();
    assert_eq!(console.len(), 3, "PID 1's fds 0, 1 and 2: {init:x?}");
    assert!(console.iter().all(|&file| file == console[0]), "one struct file: {init:x?}");
}

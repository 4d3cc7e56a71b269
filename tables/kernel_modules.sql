-- Loaded modules, as lsmod and /proc/modules list them. Paired with a host source
-- (/proc/modules) for a live host without a kernel walk.
CREATE KERNEL TABLE kernel_modules 'Loaded kernel modules, one row per module (lsmod, /proc/modules)'
FROM LIST modules OF struct module VIA list
COLUMNS (
  name     TEXT KEY         = name                         'module name',
  state    TEXT             = enum(state STRIP 'MODULE_STATE_')
                                                           'LIVE, COMING (loading), GOING (unloading) or UNFORMED',
  size     BIGINT UNSIGNED  = core_layout.size + init_layout.size | sum(mem[*].size)
                                                           'bytes of memory it takes, as /proc/modules counts them',
  refcount BIGINT ?         = refcnt.counter - 1           'references held on it; NULL on kernels without module unloading',
  base     BIGINT UNSIGNED  = core_layout.base | mem[0].base
                                                           'address of its code'
);

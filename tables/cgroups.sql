-- The cgroup v2 hierarchy, walked from its root through each cgroup's children.
CREATE KERNEL TABLE cgroups 'Control groups of the v2 hierarchy, one row per cgroup, parents before children'
FROM TREE CAST(cgrp_dfl_root AS struct cgroup_root).cgrp OF struct cgroup VIA self.sibling CHILDREN self.children
COLUMNS (
  id    BIGINT UNSIGNED KEY = kn->id             'cgroup id: the inode number of its directory in cgroup2fs',
  path  TEXT                = kernfs_path(kn)    'path from the hierarchy''s root, as /proc/PID/cgroup shows it',
  level INT UNSIGNED        = @depth             'depth below the root (0)'
);

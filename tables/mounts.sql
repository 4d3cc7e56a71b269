-- The initial mount namespace's mounts: a list before Linux 6.8, a red-black tree since.
-- Paired with a host source (/proc/self/mountinfo) for a live host without a kernel walk.
CREATE KERNEL TABLE mounts 'Mounts of the initial mount namespace, one row per mount (/proc/1/mountinfo; kql''s own namespace from the host source)'
FROM LIST CAST(init_task AS struct task_struct).nsproxy->mnt_ns->list OF struct mount VIA mnt_list
   | RBTREE CAST(init_task AS struct task_struct).nsproxy->mnt_ns->mounts OF struct mount VIA mnt_node
COLUMNS (
  mount_id    INT UNSIGNED KEY = mnt_id                           'mount id, as in mountinfo',
  parent_id   INT UNSIGNED     = mnt_parent->mnt_id               'mount id of the mount it is mounted on (its own for the root)',
  major       INT UNSIGNED     = mnt.mnt_sb->s_dev >> 20          'major number of the file system''s device',
  minor       INT UNSIGNED     = mnt.mnt_sb->s_dev & 0xfffff      'minor number of the file system''s device',
  root        TEXT             = dentry_path(mnt.mnt_root)        'the file system''s directory mounted here',
  mount_point TEXT             = d_path(addr(mnt), mnt.mnt_root)  'where it is mounted',
  fstype      TEXT             = mnt.mnt_sb->s_type->name         'file system type',
  source      TEXT             = mnt_devname                      'what was mounted: device, or a name for virtual file systems'
);

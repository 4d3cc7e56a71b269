CREATE KERNEL TABLE super_blocks 'Mounted file system instances (super blocks), one row each'
FROM LIST super_blocks OF struct super_block VIA s_list
COLUMNS (
  major     INT UNSIGNED    = s_dev >> 20        'major number of its device',
  minor     INT UNSIGNED    = s_dev & 0xfffff    'minor number of its device',
  fstype    TEXT            = s_type->name       'file system type',
  id        TEXT            = s_id               'its name: the device, or the file system type',
  blocksize BIGINT UNSIGNED = s_blocksize        'block size in bytes',
  flags     BIGINT UNSIGNED = s_flags            'SB_* flags (1 read-only)'
);

-- SLUB's caches (Debian's kernels use SLUB): what /proc/slabinfo lists.
CREATE KERNEL TABLE slab_caches 'Slab caches, one row per cache (/proc/slabinfo)'
FROM LIST slab_caches OF struct kmem_cache VIA list
COLUMNS (
  name             TEXT KEY     = name            'cache name',
  object_size      INT UNSIGNED = object_size     'bytes of each object as allocated',
  size             INT UNSIGNED = size            'bytes each object takes with its metadata (slabinfo objsize)',
  align            INT UNSIGNED = align           'alignment of objects',
  objects_per_slab INT UNSIGNED = oo.x & 0xffff   'objects per slab (slabinfo objperslab)',
  order            INT UNSIGNED = oo.x >> 16      'a slab is 2^order pages',
  flags            BIGINT UNSIGNED = flags        'SLAB_* flags'
);

CREATE KERNEL TABLE workqueues 'Workqueues, one row per workqueue'
FROM LIST workqueues OF struct workqueue_struct VIA list
COLUMNS (
  name       TEXT KEY       = name                                'workqueue name',
  flags      INT UNSIGNED   = flags                               'WQ_* flags (2 WQ_FREEZABLE, 8 WQ_MEM_RECLAIM, 64 WQ_SYSFS, …)',
  max_active INT ?          = saved_max_active                    'most work items it runs at once per cpu'
);

CREATE KERNEL TABLE bpf_maps 'BPF maps, one row per map (bpftool map)'
FROM IDR map_idr OF struct bpf_map
COLUMNS (
  id          INT UNSIGNED KEY = @index                           'map id',
  type        TEXT             = enum(map_type STRIP 'BPF_MAP_TYPE_') 'map type',
  name        TEXT             = name                             'name given at creation',
  key_size    INT UNSIGNED     = key_size                         'bytes per key',
  value_size  INT UNSIGNED     = value_size                       'bytes per value',
  max_entries INT UNSIGNED     = max_entries                      'capacity'
);

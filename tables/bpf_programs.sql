CREATE KERNEL TABLE bpf_programs 'Loaded BPF programs, one row per program (bpftool prog)'
FROM IDR prog_idr OF struct bpf_prog
COLUMNS (
  id    INT UNSIGNED KEY = @index                               'program id',
  type  TEXT             = enum(type STRIP 'BPF_PROG_TYPE_')     'program type',
  name  TEXT             = aux->name                            'name given at load time',
  tag   TEXT             = hex(tag)                             'hash of its instructions, as bpftool prints it',
  insns INT UNSIGNED     = len                                  'number of BPF instructions',
  jited BOOLEAN          = jited                                'compiled to native code'
);

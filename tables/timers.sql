-- The timer wheel of every cpu: per-cpu timer bases, each a wheel of hlist buckets.
CREATE KERNEL TABLE timers 'Pending timer-wheel timers (struct timer_list) of every cpu, one row per timer'
FROM PERCPU timer_bases THEN ARRAY @ THEN ARRAY vectors THEN HLIST @ OF struct timer_list VIA entry
COLUMNS (
  cpu      INT UNSIGNED    = @cpu                 'cpu whose wheel holds it',
  bucket   INT UNSIGNED    = @index               'wheel bucket',
  expires  BIGINT UNSIGNED = expires              'jiffies at which it fires',
  function TEXT            = symbol(function)     'function it calls',
  flags    INT UNSIGNED    = flags                'TIMER_* flags and cpu'
);

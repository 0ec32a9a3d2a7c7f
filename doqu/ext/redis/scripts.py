"""Lua run inside Redis, so that a record and its index entries change together.

All keys a script touches share one bucket's hash tag (one slot), which is
what Redis Cluster requires of a script, and every one of them is passed in
``KEYS``.

``WRITE`` is a compare-and-set over a batch of records of one bucket:

* ``KEYS[1]`` the bucket's required registry version, ``KEYS[2]`` its key
  set, the rest record and index keys referred to by position;
* ``ARGV[1]`` the index-registry version the client computed its index
  entries with; if the bucket requires a newer one the script changes
  nothing and returns ``{-1, required}`` (the client reloads the registry
  and retries);
* ``ARGV[2]`` the number of records, ``ARGV[3]`` the records, packed (big
  endian ``struct``; ``s`` is a 4-byte length and the bytes): per record
  key position (u32), primary key (s), SHA-1 hex of the value the client
  expects to replace (s, empty: none), mode (1 byte: ``S`` set, ``D``
  delete, ``K`` keep: index entries only), new value (s), number of index
  operations (u32), then per operation: code (1 byte), key position (u32),
  member (s), argument (s). One packed argument instead of a dozen per
  record keeps the client's command encoding cheap;
* if any record no longer holds the expected value, nothing changes and the
  script returns the 1-based positions of those records (the client reads
  them again and recomputes); otherwise it applies everything, returns
  ``{0}``.
"""

from __future__ import annotations

__all__ = ["WRITE", "BUMP", "TAKEN"]

WRITE = """
local required = tonumber(redis.call('GET', KEYS[1]) or '0')
if required > tonumber(ARGV[1]) then
  return {-1, required}
end
local count = tonumber(ARGV[2])
local blob = ARGV[3]
local unpack = struct.unpack
local pos = 1
local records = {}
local conflicts = {}
for i = 1, count do
  local keypos, pk, expected, mode, value, nops
  keypos, pk, expected, mode, value, nops, pos = unpack('>I4I4c0I4c0c1I4c0I4', blob, pos)
  local ops = {}
  for j = 1, nops do
    local code, target, member, arg
    code, target, member, arg, pos = unpack('>c1I4I4c0I4c0', blob, pos)
    ops[j] = {code, KEYS[target], member, arg}
  end
  local key = KEYS[keypos]
  local current = redis.call('GET', key)
  if current then
    current = redis.sha1hex(current)
  else
    current = ''
  end
  if current ~= expected then
    conflicts[#conflicts + 1] = i
  end
  records[i] = {key, pk, mode, value, ops}
end
if #conflicts > 0 then
  return conflicts
end
for i = 1, count do
  local record = records[i]
  local mode = record[3]
  if mode == 'S' then
    redis.call('SET', record[1], record[4])
    redis.call('SADD', KEYS[2], record[2])
  elseif mode == 'D' then
    redis.call('DEL', record[1])
    redis.call('SREM', KEYS[2], record[2])
  end
  for _, op in ipairs(record[5]) do
    local code = op[1]
    if code == 'Z' then
      redis.call('ZADD', op[2], op[4], op[3])
    elseif code == 'z' then
      redis.call('ZREM', op[2], op[3])
    elseif code == 'S' then
      redis.call('SADD', op[2], op[3])
    elseif code == 's' then
      redis.call('SREM', op[2], op[3])
    elseif code == 'H' then
      redis.call('HSET', op[2], op[3], op[4])
    elseif code == 'h' then
      redis.call('HDEL', op[2], op[3])
    end
  end
end
return {0}
"""

#: Raise a bucket's required registry version to ARGV[1] (never lower it).
BUMP = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
"""

#: Which of the comma-separated keys in ARGV[1] are members of the set KEYS[1] (a short reply).
TAKEN = """
local taken = {}
for key in string.gmatch(ARGV[1], '[^,]+') do
  if redis.call('SISMEMBER', KEYS[1], key) == 1 then
    taken[#taken + 1] = key
  end
end
return taken
"""

-- search: KEYS = a time index (sorted set of workflow ids)
--         ARGV = id prefix, how many matches to skip, how many to return (-1: all), "1" for
--         newest first, how many ids to read at most (0: no limit)
-- The ids in the index that start with the prefix, a page of them in the index's order: the
-- index is read from the end asked for, a slice at a time, until the page is full.
-- Returns {1, ids}, or {0, ids so far} when it read as many as it may before the page filled.
local prefix, skip, want, most = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[5])
local command = ARGV[4] == '1' and 'ZREVRANGE' or 'ZRANGE'
local size, found, at = #prefix, {}, 0
while want < 0 or #found < want do
  if most > 0 and at >= most then return {0, found} end
  local slice = redis.call(command, KEYS[1], at, at + 999)
  for _, id in ipairs(slice) do
    if string.sub(id, 1, size) == prefix then
      if skip > 0 then
        skip = skip - 1
      else
        found[#found + 1] = id
        if #found == want then break end
      end
    end
  end
  if #slice < 1000 then break end
  at = at + 1000
end
return {1, found}

-- search: KEYS = a time index (sorted set of workflow ids)
--         ARGV = id prefix, how many matches to skip, how many to return (-1: all), "1" for newest first
-- The ids in the index that start with the prefix, a page of them in the index's order: the
-- index is read from the end asked for, a slice at a time, until the page is full.
local prefix, skip, want = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local command = ARGV[4] == '1' and 'ZREVRANGE' or 'ZRANGE'
local size, found, at = #prefix, {}, 0
while want < 0 or #found < want do
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
return found

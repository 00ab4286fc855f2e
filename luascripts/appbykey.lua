-- appbykey.lua: find the application an API key belongs to, by the key's
-- hash, in one round trip (the index field, then the record it points to).
-- It does not judge the key: the caller checks the record lists the hash
-- and that it has not expired.
--
-- KEYS[1] apps hash   <ns>:apps (fields: see appput.lua)
-- ARGV[1] the hex SHA-256 of the API key
--
-- Returns {record JSON, revision}, or nil when the hash is not indexed.
local name = redis.call('HGET', KEYS[1], 'key:' .. ARGV[1])
if not name then
    return nil
end
local rec = redis.call('HGET', KEYS[1], 'app:' .. name)
if not rec then
    return nil
end
return {rec, redis.call('HGET', KEYS[1], 'rev:' .. name) or '0'}

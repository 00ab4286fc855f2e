-- appput.lua: write an application record (tenant) if it has not changed
-- since it was read, and bring the API key index in line with it, at once.
-- Every field lives in the one hash <ns>:apps, so the script touches one key
-- (one Redis Cluster slot).
--
-- Fields of <ns>:apps:
--   app:<name>   the record, JSON (key hashes, secrets; see store/redisstore/apps.go)
--   rev:<name>   the record's revision, counting its writes
--   key:<hash>   <name>: the index from an API key's SHA-256 to its application
--
-- KEYS[1] apps hash   <ns>:apps
-- ARGV[1] application name
-- ARGV[2] the revision the write is based on; 0 creates (the name must be free)
-- ARGV[3] the new record, JSON
-- ARGV[4..] the key hashes of the new record: each is indexed; the old
--           record's hashes that are not among them leave the index
--
-- Returns the new revision, or 0 when the revision did not match (the
-- application exists, for a create; it changed or is gone, for an update).
local name = ARGV[1]
local rev = tonumber(redis.call('HGET', KEYS[1], 'rev:' .. name) or '0')
if rev ~= tonumber(ARGV[2]) then
    return 0
end
local keep = {}
for i = 4, #ARGV do
    keep[ARGV[i]] = true
    redis.call('HSET', KEYS[1], 'key:' .. ARGV[i], name)
end
local old = redis.call('HGET', KEYS[1], 'app:' .. name)
if old then
    local rec = cjson.decode(old)
    if type(rec.keys) == 'table' then
        for _, k in ipairs(rec.keys) do
            local f = 'key:' .. k.hash
            if not keep[k.hash] and redis.call('HGET', KEYS[1], f) == name then
                redis.call('HDEL', KEYS[1], f)
            end
        end
    end
end
redis.call('HSET', KEYS[1], 'app:' .. name, ARGV[3], 'rev:' .. name, rev + 1)
return rev + 1

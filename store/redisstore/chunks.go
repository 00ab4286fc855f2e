package redisstore

import "strconv"

// Long values of an event hash (url, headers, body, history, last error)
// are stored in chunks of at most chunkSize bytes: field f holds the first,
// f+"1", f+"2", ... the following ones. Redis keeps a hash listpack-encoded
// (a few bytes per field instead of some 50) only while every value is at
// most hash-max-listpack-value bytes, 64 by default, so an ordinary event
// with a 100-byte body stays compact on a default-configured Redis.
//
// A value longer than chunkSize*maxChunks is stored whole in f: such an
// event is hashtable-encoded whatever we do, and its overhead is small next
// to its size; the cap also keeps every event well under
// hash-max-listpack-entries (128) fields.
//
// Readers join f, f+"1", ... up to the first missing chunk, so a value
// stored whole (by this code, or by releases before chunking) reads as it
// did. Writers that replace a value delete the chunks the old one had
// beyond the new one's (luascripts/prelude.lua long_set), so there is never
// a stale chunk after the last one.
//
// prelude.lua implements the same layout for the scripts; the constants
// must agree (TestChunkConstantsMatchPrelude).
const (
	chunkSize = 64
	maxChunks = 16
)

// longFields are the fields that may be chunked (codec.go marks them).
var longFields = func() []string {
	var out []string
	for _, f := range eventFields {
		if f.long {
			out = append(out, f.name)
		}
	}
	return out
}()

// chunkField is the field of chunk i of field f.
func chunkField(f string, i int) string {
	if i == 0 {
		return f
	}
	return f + strconv.Itoa(i)
}

// appendLong appends the field, value pairs that store v in field f.
func appendLong(args []any, f string, v []byte) []any {
	if len(v) <= chunkSize || len(v) > chunkSize*maxChunks {
		return append(args, f, v)
	}
	for i := 0; len(v) > 0; i++ {
		n := min(len(v), chunkSize)
		args = append(args, chunkField(f, i), v[:n])
		v = v[n:]
	}
	return args
}

// joinLong returns field f of hash fields m with its chunks joined, and
// whether f is there at all.
func joinLong(m map[string]string, f string) (string, bool) {
	v, ok := m[f]
	if !ok {
		return "", false
	}
	next, ok := m[chunkField(f, 1)]
	if !ok {
		return v, true
	}
	buf := make([]byte, 0, 2*len(v)+len(next))
	buf = append(append(buf, v...), next...)
	for i := 2; ; i++ {
		c, ok := m[chunkField(f, i)]
		if !ok {
			return string(buf), true
		}
		buf = append(buf, c...)
	}
}

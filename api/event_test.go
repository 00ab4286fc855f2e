package api

import (
	"encoding/json"
	"testing"
)

// FuzzBodyBytes: a JSON string body decodes to the same bytes on
// unquoteSimple's path as with encoding/json, or goes to encoding/json.
func FuzzBodyBytes(f *testing.F) {
	for _, s := range []string{`"plain"`, `"{\"order\":12345,\"note\":\"x\"}"`, `"tab\tnl\nslash\/back\\"`,
		`"\u00e9\ud83c\udf89"`, `"\ud800"`, "\"\xff\"", "\"raw\x01ctl\"", `"a"b"`, `"end\"`, `""`, `"\b\f\r"`,
		`"\x"`, `"é中🎉"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var s string
		err := json.Unmarshal(raw, &s)
		got, ok := unquoteSimple(raw)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("unquoteSimple took %q, which encoding/json refuses: %v", raw, err)
		}
		if string(got) != s {
			t.Fatalf("unquoteSimple(%q) = %q, encoding/json %q", raw, got, s)
		}
	})
}

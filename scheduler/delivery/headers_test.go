package delivery

import (
	"net/http"
	"slices"
	"testing"
)

// TestHeaderBuilder: values set through the builder read back like
// http.Header.Set's, and an Add or Set on one header afterwards leaves the
// others (whose values share the builder's array) alone.
func TestHeaderBuilder(t *testing.T) {
	t.Parallel()
	hb := headerBuilder{h: http.Header{}, vals: make([]string, 0, 3)}
	hb.set("A", "1")
	hb.set("B", "2")
	hb.set("C", "3")
	hb.h.Add("B", "2b") // must not land in C's slot
	hb.set("A", "4")    // replaces, like Set; beyond the initial capacity
	hb.h.Add("C", "3b")
	want := http.Header{"A": {"4"}, "B": {"2", "2b"}, "C": {"3", "3b"}}
	for k, v := range want {
		if got := hb.h.Values(k); !slices.Equal(got, v) {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if len(hb.h) != len(want) {
		t.Errorf("header = %v, want %v", hb.h, want)
	}
}

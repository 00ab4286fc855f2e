package delivery

import "net/http"

// headerBuilder fills a request's header map, one value per header, with
// keys that are already canonical. The values share one backing array, so a
// delivery's headers cost the map and that array rather than a slice per
// header, a canonicalized copy per non-canonical name and the map's growth.
type headerBuilder struct {
	h    http.Header
	vals []string
}

// set is http.Header.Set for a canonical key.
func (b *headerBuilder) set(canonicalKey, v string) {
	b.vals = append(b.vals, v)
	n := len(b.vals)
	// Capacity 1: an Add to this header elsewhere must reallocate, not
	// overwrite the next header's value in the shared array.
	b.h[canonicalKey] = b.vals[n-1 : n : n]
}

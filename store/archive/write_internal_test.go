package archive

import "testing"

func TestBoxReusesOnlyAnEqualValue(t *testing.T) {
	t.Parallel()
	var b box[string]
	first := b.of("w1")
	if again := b.of("w" + "1"[:1]); again != "w1" || again != first {
		t.Errorf("of(w1) again = %v, want w1", again)
	}
	if got := b.of("w2"); got != "w2" {
		t.Errorf("of(w2) after w1 = %v, want w2", got)
	}
	if got := b.of(""); got != "" {
		t.Errorf("of(\"\") = %v, want the empty string (not NULL)", got)
	}
	if got := b.opt(opt[string]{}); got != nil {
		t.Errorf("opt(none) = %v, want nil (NULL)", got)
	}
	if got := b.opt(some("w3")); got != "w3" {
		t.Errorf("opt(w3) = %v, want w3", got)
	}
	var n box[int64]
	if got := n.of(30000); got != int64(30000) {
		t.Errorf("of(30000) = %#v, want int64(30000)", got)
	}
	if got := n.of(0); got != int64(0) {
		t.Errorf("of(0) after 30000 = %#v, want int64(0)", got)
	}
}

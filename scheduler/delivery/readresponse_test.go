package delivery

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestReadResponse: the snippet is the first ResponseSnippetBytes (never
// more than MaxResponseBytes), however the body arrives in pieces, and no
// more than MaxResponseBytes plus drainBytes is read from the body.
func TestReadResponse(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("0123456789", 30_000)
	tests := []struct {
		name     string
		maxRead  int64
		body     io.Reader
		want     string
		wantRead int64
	}{
		{"short", DefaultMaxResponseBytes, strings.NewReader("ok"), "ok", 2},
		{"one byte at a time", DefaultMaxResponseBytes, iotest.OneByteReader(strings.NewReader(long[:3000])),
			long[:ResponseSnippetBytes], 3000},
		{"bounded read", DefaultMaxResponseBytes, strings.NewReader(long), long[:ResponseSnippetBytes],
			DefaultMaxResponseBytes + drainBytes},
		{"read limit below the snippet", 100, strings.NewReader(long), long[:100], 100 + drainBytes},
		{"cut in a UTF-8 sequence", DefaultMaxResponseBytes,
			strings.NewReader(strings.Repeat("a", ResponseSnippetBytes-1) + "é"), strings.Repeat("a", ResponseSnippetBytes-1),
			ResponseSnippetBytes + 1},
		{"error mid-body keeps what came", DefaultMaxResponseBytes,
			io.MultiReader(strings.NewReader("partial"), iotest.ErrReader(errors.New("reset"))), "partial", 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := New(Config{MaxResponseBytes: tt.maxRead})
			body := &countingReader{r: tt.body}
			if got := d.readResponse(body); got != tt.want {
				t.Errorf("snippet = %d bytes %.40q, want %d bytes %.40q", len(got), got, len(tt.want), tt.want)
			}
			if body.n != tt.wantRead {
				t.Errorf("read %d bytes of the body, want %d", body.n, tt.wantRead)
			}
		})
	}
}

package scheduler

import (
	"maps"
	"testing"
)

func TestParseHeaderLines(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		lines   []string
		want    map[string]string
		wantErr bool
	}{
		{name: "absent: the original's default", lines: nil, want: map[string]string{"Content-Type": "application/json"}},
		{name: "empty: the original's default", lines: []string{}, want: map[string]string{"Content-Type": "application/json"}},
		{name: "split at the first colon, trimmed", lines: []string{"X-T:  a:b ", "Authorization:Bearer x", "X-Empty:"},
			want: map[string]string{"X-T": "a:b", "Authorization": "Bearer x", "X-Empty": ""}},
		{name: "connection headers dropped", lines: []string{"Connection: keep-alive", "host: example.com", "Content-Length: 3",
			"Proxy-Authorization: Basic eA==", "Proxy-Anything: 1", "Transfer-Encoding: chunked", "Keep-Alive: 5", "TE: trailers",
			"Trailer: X", "Upgrade: h2c", "Content-Type: text/plain"},
			want: map[string]string{"Content-Type": "text/plain"}},
		{name: "only connection headers: no default added", lines: []string{"Connection: close"}, want: map[string]string{}},
		{name: "webhook headers are kept for validation to refuse", lines: []string{"webhook-id: x"}, want: map[string]string{"webhook-id": "x"}},
		{name: "no colon", lines: []string{"X-A 1"}, wantErr: true},
		{name: "no name", lines: []string{": v"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseHeaderLines(tt.lines)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && !maps.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

package worker

import "testing"

// TestRedactURL: what of a URL the failure log keeps, on the text itself,
// for URLs of every shape (also ones that do not parse).
func TestRedactURL(t *testing.T) {
	cases := []struct{ in, want string }{
		{"https://example.com/hook", "https://example.com/hook"},
		{"https://example.com/hook?a=1&b=2", "https://example.com/hook?a=1&b=2"},
		{"https://u:pw@example.com/x", "https://u:REDACTED@example.com/x"},
		{"https://ghp_tokenvalue@example.com/x", "https://REDACTED@example.com/x"},
		{"https://u:p@ss@example.com/x", "https://u:REDACTED@example.com/x"},
		{"https://example.com/users/@me?x=1", "https://example.com/users/@me?x=1"},
		{"https://example.com/x?token=abc&access_token=def&client_secret=g&Signature=h",
			"https://example.com/x?token=REDACTED&access_token=REDACTED&client_secret=REDACTED&Signature=REDACTED"},
		{"https://example.com/x?X-Amz-Credential=a&X-Amz-Security-Token=b&X-Amz-Date=20250101",
			"https://example.com/x?X-Amz-Credential=REDACTED&X-Amz-Security-Token=REDACTED&X-Amz-Date=20250101"},
		{"https://example.com/x?sig=a&se=2025&sp=r", "https://example.com/x?sig=REDACTED&se=2025&sp=r"},
		{"https://example.com/x?API%5FKEY=a&apikey=b&key=c&password=d&pwd=e&auth=f&code=g&session_id=h&page=3",
			"https://example.com/x?API%5FKEY=REDACTED&apikey=REDACTED&key=REDACTED&password=REDACTED&pwd=REDACTED&auth=REDACTED&code=REDACTED&session_id=REDACTED&page=3"},
		{"https://example.com/x?token&flag=&token=", "https://example.com/x?token&flag=&token=REDACTED"},
		{"https://example.com/x?", "https://example.com/x?"},
		{"https://example.com/x#access_token=abc", "https://example.com/x"},
		{"http://u:pw@bad host/%zz?token=t", "http://u:REDACTED@bad host/%zz?token=REDACTED"},
		{"not a url ?secret=1", "not a url ?secret=REDACTED"},
		{"", ""},
	}
	for _, c := range cases {
		if got := redactURL(c.in); got != c.want {
			t.Errorf("redactURL(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

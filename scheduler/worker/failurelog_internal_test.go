package worker

import (
	"testing"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/delivery"
)

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

// TestRedactor: what newRedactor hides of a text that quotes the request:
// each secret whole (the longest first), in the forms an echo shows it, and
// cut off at the text's end; values too short to tell from ordinary text
// stay.
func TestRedactor(t *testing.T) {
	ev := &scheduler.Event{URL: "https://h/x?access_token=a%2Bb%2Fc123&page=12345",
		Headers: map[string]string{"X-Key": "k3y-value", "X-N": "1", "X-Quote": `say "hi" <b>`},
		Body:    []byte(`{"k":"k3y-value!"}`)}
	hide := newRedactor(ev, delivery.Result{})
	cases := []struct{ in, want string }{
		{"key k3y-value; n 1", "key REDACTED; n 1"},
		{`body {"k":"k3y-value!"} end`, "body REDACTED end"},
		{`json "{\"k\":\"k3y-value!\"}"`, `json "REDACTED"`},
		{`say \"hi\" \u003cb\u003e and say \"hi\" <b>`, "REDACTED and REDACTED"},
		{"uri /x?access_token=a%2Bb%2Fc123&page=12345 decoded a+b/c123", "uri /x?access_token=REDACTED&page=12345 decoded REDACTED"},
		{"cut off: k3y-va", "cut off: REDACTED"},
		{"cut off: k3y", "cut off: k3y"}, // shorter than MinSecretBytes
		{"nothing secret", "nothing secret"},
		{"", ""},
	}
	for _, c := range cases {
		if got := hide(c.in); got != c.want {
			t.Errorf("redact(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

package topic

import "testing"

const (
	benchFilter = `data["body"]["x"] == 1 and data["headers"]["y"] == "z" or data["special_key"] == "special value"`
	benchBody   = `{"x":1,"name":"order-42","amount":12.5}`
)

var benchHeaders = map[string]string{"y": "z", "Content-Type": "application/json"}

// BenchmarkFilterSwitchExample1 is the cost of one match per subscription
// per message, with data already built once for the message.
func BenchmarkFilterSwitchExample1(b *testing.B) {
	f, err := CompileFilter(benchFilter)
	if err != nil {
		b.Fatal(err)
	}
	d := MessageData("app1", "orders", "m1", "POST", benchHeaders, []byte(benchBody))
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := f.Match(d); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkMessageData is the once-per-message cost of building data
// (parsing the JSON body), for comparison.
func BenchmarkMessageData(b *testing.B) {
	body := []byte(benchBody)
	b.ReportAllocs()
	for b.Loop() {
		_ = MessageData("app1", "orders", "m1", "POST", benchHeaders, body)
	}
}

// BenchmarkFilterSwitchExample1WithData is one message to one
// subscription: building data and matching.
func BenchmarkFilterSwitchExample1WithData(b *testing.B) {
	f, err := CompileFilter(benchFilter)
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(benchBody)
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := f.Match(MessageData("app1", "orders", "m1", "POST", benchHeaders, body)); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

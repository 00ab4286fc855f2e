package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// slowBatch decodes a batch body as bind does without the fast path: the
// body, then each item on its own with encoding/json.
func slowBatch(data []byte) ([]CreateRequest, []error, error) {
	var body struct {
		Events []json.RawMessage `json:"events"`
	}
	if err := decodeJSON(bytes.NewReader(data), &body); err != nil {
		return nil, nil, err
	}
	items := make([]CreateRequest, len(body.Events))
	errs := make([]error, len(body.Events))
	for i, raw := range body.Events {
		errs[i] = decodeJSON(bytes.NewReader(raw), &items[i])
	}
	return items, errs, nil
}

// realisticBatch is a batch body of n events as the Go client sends them
// (cassata-bench's realistic shape).
func realisticBatch(n int) []byte {
	items := make([]string, n)
	for i := range items {
		body := fmt.Sprintf(`{"event":"paid","customer":"c-%06d","order":"o-%08d","cents":%d}`, i, i*7, 100+i)
		item, _ := json.Marshal(map[string]any{"app": "ingest", "id": fmt.Sprintf("b-%d", i),
			"url":    fmt.Sprintf("http://127.0.0.1:40000/?customer=c-%06d&order=o-%08d&lang=en", i, i*7),
			"method": "POST", "headers": map[string]string{"Content-Type": "application/json"}, "body": body,
			"at": "2030-01-02T03:04:05.678Z", "timeout": "5s", "max_attempts": 3})
		items[i] = string(item)
	}
	return []byte(`{"events":[` + strings.Join(items, ",") + `]}`)
}

var batchSeeds = []string{
	string(realisticBatch(3)),
	`{"events":[]}`,
	`{"events":null}`,
	`{"events":[null]}`,
	`{}`,
	`[]`,
	`{"events":[{"app":"a","id":"x","url":"http://h/","at":"2030-01-01T00:00:00Z"}]} `,
	`{"events":[{"app":"a","id":"x"}]} {"more":1}`,
	`{"events":[{"APP":"a","Id":"x","URL":"http://h/"}]}`,
	`{"events":[{"app":"a","app":"b"}]}`,
	`{"events":[{"app":1}]}`,
	`{"events":[{"app":"a","max_attempts":1.5}]}`,
	`{"events":[{"app":"a","max_attempts":99999999999999999999}]}`,
	`{"events":[{"app":"\ud800","id":"\u00e9\u0000"}]}`,
	"{\"events\":[{\"app\":\"\xff\"}]}",
	`{"events":[{"app":"a","headers":{"A":"1","A":"2"}}]}`,
	`{"events":[{"app":"a","timeout":30}]}`,
	`{"events":[{"app":"a","timeout":  "30s" ,"body":{"x":[1,2]}}]}`,
	`{"events":[{"app":"a","unknown":{"deep":[1,{"x":null}]}}]}`,
	`{"events":[{"app":"a"}],"events":[{"app":"b"}]}`,
	`{"events":[{"app":"a"}`,
	`{"events":[1,"x"]}`,
}

// FuzzBatchFast: wherever the fast path decodes a batch, the item by item
// decoding with encoding/json decodes it too, without an error in any
// item, to the same requests.
func FuzzBatchFast(f *testing.F) {
	for _, s := range batchSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := decodeBatchFast(data)
		if !ok {
			return
		}
		slow, errs, err := slowBatch(data)
		if err != nil {
			t.Fatalf("fast path decoded %q, encoding/json refuses it: %v", data, err)
		}
		if len(slow) != len(fast) {
			t.Fatalf("%q: fast path %d items, encoding/json %d", data, len(fast), len(slow))
		}
		for i := range slow {
			if errs[i] != nil {
				t.Fatalf("%q: fast path decoded item %d, encoding/json refuses it: %v", data, i, errs[i])
			}
			if !reflect.DeepEqual(fast[i], slow[i]) {
				t.Fatalf("%q item %d:\nfast %+v\nslow %+v", data, i, fast[i], slow[i])
			}
		}
	})
}

// TestBatchFastTakesRealisticBatches: the fast path is the one taken for
// the batches clients send (a fast path that gave up on them would hide
// behind the fallback and cost its time for nothing).
func TestBatchFastTakesRealisticBatches(t *testing.T) {
	for _, n := range []int{1, 100, MaxBatch} {
		items, ok := decodeBatchFast(realisticBatch(n))
		if !ok || len(items) != n || items[n-1].URL == "" {
			t.Fatalf("%d events: fast path ok=%v with %d items", n, ok, len(items))
		}
	}
	if _, ok := decodeBatchFast(realisticBatch(MaxBatch + 1)); ok {
		t.Fatal("fast path took a batch over MaxBatch (its error is the slow path's)")
	}
}

// BenchmarkBatchDecode compares decoding a 1,000-event batch item by item
// with encoding/json (as before the fast path) and with the fast path.
func BenchmarkBatchDecode(b *testing.B) {
	data := realisticBatch(MaxBatch)
	b.Run("encoding/json", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, _, err := slowBatch(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fast", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, ok := decodeBatchFast(data); !ok {
				b.Fatal("fast path gave up")
			}
		}
	})
}

// FuzzBatchResponseJSON: go-json writes a batch's answer byte for byte as
// encoding/json does, or BatchResponse.fastJSON declines it.
func FuzzBatchResponseJSON(f *testing.F) {
	for _, s := range []string{"", "plain", `<script>&"'\`, "\u2028\u2029", "\x00\x01\x1f\x7f", "é中🎉",
		"\xff\xfe bad", "a\u00e9\xc3", "\\u0041", "</", "\t\r\n"} {
		f.Add(s, s+"k", 201, true)
	}
	f.Fuzz(func(t *testing.T, s, k string, status int, withEvent bool) {
		body := s
		code := status
		errText := s
		r := BatchResponse{Results: []BatchResult{{Status: status, Error: &ErrorDetail{Code: k, Message: s, Field: k}}}}
		if withEvent {
			v := EventView{App: k, ID: s, URL: s, Method: k, Headers: map[string]string{s: k, k: s, "Content-Type": s},
				Body: &body, Status: s, Attempts: status, MaxAttempts: -status, Timeout: s, DueAt: s, CreatedAt: k,
				UpdatedAt: s, FinishedAt: k, LastStatusCode: status, LastError: s, CallbackURL: k, FlowKey: s,
				History: []AttemptView{{Attempt: 1, At: s, StatusCode: &code, Error: &errText, DurationMS: int64(status),
					Worker: k, Response: s, Stale: withEvent}, {Attempt: 2}}}
			r.Results = append(r.Results, BatchResult{Status: 201, Event: &v}, BatchResult{Status: 200, Event: &EventView{}})
		}
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := r.fastJSON(); ok && !bytes.Equal(got, want) {
			t.Fatalf("go-json wrote\n%s\nencoding/json\n%s", got, want)
		}
	})
}

// TestBatchResponseJSONDeclinesBadUTF8: an answer with bytes that are not
// UTF-8 goes to encoding/json, which writes U+FFFD for them.
func TestBatchResponseJSONDeclinesBadUTF8(t *testing.T) {
	bad := "a\xffb"
	r := BatchResponse{Results: []BatchResult{{Status: 201, Event: &EventView{ID: "x", Body: &bad}}}}
	if b, ok := r.fastJSON(); ok {
		want, _ := json.Marshal(r)
		if !bytes.Equal(b, want) {
			t.Fatalf("fastJSON answered %q for a body with a bad byte, encoding/json %q", b, want)
		}
	}
	good := BatchResponse{Results: []BatchResult{{Status: 201, Event: &EventView{ID: "x"}}}}
	if _, ok := good.fastJSON(); !ok {
		t.Fatal("fastJSON declined a plain answer")
	}
}

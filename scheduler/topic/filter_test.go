package topic

import (
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// msg builds data the way publishing does, from a JSON or raw body.
func msg(method string, headers map[string]string, body string) Data {
	return MessageData("app1", "orders", "m1", method, headers, []byte(body))
}

// matchCase is one filter evaluated against one message.
type matchCase struct {
	name    string
	filter  string
	data    Data
	want    bool
	wantErr bool
}

func runMatchCases(t *testing.T, cases []matchCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, err := CompileFilter(tc.filter)
			if err != nil {
				t.Fatalf("CompileFilter(%q): %v", tc.filter, err)
			}
			got, err := f.Match(tc.data)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Match(%q) error = %v, want error %v", tc.filter, err, tc.wantErr)
			}
			if got != tc.want {
				t.Fatalf("Match(%q) = %v, want %v (data %v)", tc.filter, got, tc.want, tc.data)
			}
		})
	}
}

// TestSwitchExamples evaluates switch's README examples as switch (Python
// eval) documents them.
func TestSwitchExamples(t *testing.T) {
	t.Parallel()
	const ex1 = `data["body"]["x"] == 1 and data["headers"]["y"] == "z" or data["special_key"] == "special value"`
	const ex2 = `data["http_method"] == "post" and data["body"]["x"] and data["body"]["x"]["y"]`
	yz := map[string]string{"y": "z"}
	runMatchCases(t, []matchCase{
		{"ex1 x=1 y=z", ex1, msg("POST", yz, `{"x":1}`), true, false},
		{"ex1 x=1.0 y=z", ex1, msg("POST", yz, `{"x":1.0}`), true, false},
		{"ex1 x=1 y=other", ex1, msg("POST", map[string]string{"y": "w"}, `{"x":1}`), false, false},
		{"ex1 special_key", ex1, msg("POST", yz, `{"x":2,"special_key":"special value"}`), true, false},
		{"ex1 neither", ex1, msg("POST", yz, `{"x":2,"special_key":"other"}`), false, false},
		{"ex1 no x", ex1, msg("POST", yz, `{"a":1}`), false, false},
		{"ex1 no headers", ex1, msg("POST", nil, `{"x":1}`), false, false},
		{"ex1 body not JSON", ex1, msg("POST", yz, `x=1`), false, false},
		{"ex2 match, method upper case", ex2, msg("POST", nil, `{"x":{"y":"v"}}`), true, false},
		{"ex2 get", ex2, msg("GET", nil, `{"x":{"y":"v"}}`), false, false},
		{"ex2 x missing", ex2, msg("POST", nil, `{"a":1}`), false, false},
		{"ex2 y zero", ex2, msg("POST", nil, `{"x":{"y":0}}`), false, false},
		{"ex2 y empty string", ex2, msg("POST", nil, `{"x":{"y":""}}`), false, false},
		{"ex2 x a string", ex2, msg("POST", nil, `{"x":"str"}`), false, false},
		{"ex2 x a number", ex2, msg("POST", nil, `{"x":5}`), false, false},
		{"True", `True`, msg("GET", nil, ``), true, false},
		{"False", `False`, msg("GET", nil, ``), false, false},
		{"None", `None`, msg("GET", nil, ``), false, false},
		{"empty", ``, msg("GET", nil, ``), true, false},
		{"blank", " \n\t ", msg("GET", nil, ``), true, false},
	})
}

func TestTruthiness(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		json string
		want bool
	}{
		{`null`, false}, {`false`, false}, {`0`, false}, {`0.0`, false}, {`""`, false}, {`[]`, false}, {`{}`, false},
		{`1`, true}, {`-0.5`, true}, {`"a"`, true}, {`"0"`, true}, {`[0]`, true}, {`{"a":1}`, true}, {`true`, true},
	} {
		t.Run(tc.json, func(t *testing.T) {
			t.Parallel()
			d := msg("POST", nil, `{"v":`+tc.json+`}`)
			for filter, want := range map[string]bool{
				`data["v"]`:               tc.want,
				`not data["v"]`:           !tc.want,
				`!data["v"]`:              !tc.want,
				`data["v"] and True`:      tc.want,
				`data["v"] or False`:      tc.want,
				`True and data["v"]`:      tc.want,
				`not not data["v"]`:       tc.want,
				`data["v"] ? True : None`: tc.want,
			} {
				f, err := CompileFilter(filter)
				if err != nil {
					t.Fatalf("CompileFilter(%q): %v", filter, err)
				}
				if got, err := f.Match(d); err != nil || got != want {
					t.Errorf("%s with v=%s: got %v, %v; want %v", filter, tc.json, got, err, want)
				}
			}
		})
	}
	runMatchCases(t, []matchCase{
		{"not missing", `not data["missing"]`, msg("GET", nil, `{}`), true, false},
		{"missing", `data["missing"]`, msg("GET", nil, `{}`), false, false},
	})
}

// TestPythonSemantics covers what switch's Python gave beyond truthiness:
// and/or give an operand, indexing never fails, numbers compare by value.
func TestPythonSemantics(t *testing.T) {
	t.Parallel()
	d := msg("post", map[string]string{"y": "z"}, `{"x":1,"l":[10,20,30],"o":{"a":{"b":"c"}},"s":"str","zero":0}`)
	runMatchCases(t, []matchCase{
		{"or gives the operand", `(data["missing"] or "dflt") == "dflt"`, d, true, false},
		{"or gives the first truthy", `(data["x"] or "dflt") == 1`, d, true, false},
		{"and gives the falsy operand", `(data["zero"] and "x") == 0`, d, true, false},
		{"and of a literal gives the operand", `("a" and data["x"]) == 1 and ("" or data["x"]) == 1`, d, true, false},
		{"and gives the last operand", `(data["x"] and data["s"]) == "str"`, d, true, false},
		{"and short-circuits", `data["missing"] and data["s"] < 1`, d, false, false},
		{"or short-circuits", `data["x"] or data["s"] < 1`, d, true, false},
		{"&& and || work too", `data["x"] && (data["missing"] || data["s"])`, d, true, false},
		{"int equals float", `data["x"] == 1 and data["x"] == 1.0 and 1 == 1.0`, d, true, false},
		{"not equal", `data["x"] != 2 and data["x"] != 1.5`, d, true, false},
		{"string not equal to number", `data["s"] == 1`, d, false, false},
		{"list index int", `data["l"][0] == 10`, d, true, false},
		{"list index float", `data["l"][1.0] == 20`, d, true, false},
		{"list index negative", `data["l"][-1] == 30`, d, true, false},
		{"list index out of range", `data["l"][3] == None`, d, true, false},
		{"list index negative out of range", `data["l"][-4] == None`, d, true, false},
		{"list index non-integer", `data["l"][0.5] == None`, d, true, false},
		{"list index string", `data["l"]["a"] == None`, d, true, false},
		{"index a string", `data["s"][0] == None`, d, true, false},
		{"index a number", `data["x"]["a"] == None`, d, true, false},
		{"index null", `data["missing"]["a"]["b"] == None`, d, true, false},
		{"object with number key", `data["o"][0] == None`, d, true, false},
		{"nested", `data["o"]["a"]["b"] == "c"`, d, true, false},
		{"dot notation", `data.o.a.b == "c" and data.missing.a == None`, d, true, false},
		{"header", `data["headers"]["y"] == "z" and data["headers"]["Y"] == None`, d, true, false},
		{"in", `"a" in data["o"] and 20 in data["l"] and 20.0 in data["l"] and "y" in data["headers"]`, d, true, false},
		{"not in", `"b" not in data["o"] and 21 not in data["l"] and not "t" in data["missing"]`, d, true, false},
		{"not binds as in Python", `not data["x"] == 2 and not data["x"] + 1 == 3 and (not data["x"]) == False and not data["zero"] and not data["x"] or True`, d, true, false},
		{"not over a comparison", `not data["x"] == 1`, d, false, false},
		{"! binds tightly", `!data["x"] == False`, d, true, false},
		{"in a string", `"t" in data["s"] and "x" not in data["s"] and "" in data["s"]`, d, true, false},
		{"in as a value", `("t" in data["s"]) == True`, d, true, false},
		{"comparison", `data["x"] < 2 and data["x"] >= 1.0`, d, true, false},
		{"plus", `data["x"] + 1 == 2 and data["s"] + "!" == "str!" and 1 + 0.5 == 1.5 and (data["x"] + 1) * 2 == 4`, d, true, false},
		{"safe builtins", `len(data["l"]) == 3 and lower("AB") == "ab"`, d, true, false},
		{"none literal", `data["missing"] == None and None == nil`, d, true, false},
	})
}

func TestMessageData(t *testing.T) {
	t.Parallel()
	h := map[string]string{"X-Request-ID": "r1", "content-type": "application/json"}
	d := MessageData("app1", "orders", "m1", "PATCH", h, []byte(`{"k":"v","app":"spoof","id":"spoof","topic":"spoof","body":"spoof","headers":{},"http_method":"get","n":[1]}`))
	for k, want := range map[string]any{"app": "app1", "topic": "orders", "id": "m1", "http_method": "patch", "k": "v"} {
		if d[k] != want {
			t.Errorf("data[%q] = %v, want %v", k, d[k], want)
		}
	}
	if body, ok := d["body"].(map[string]any); !ok || body["app"] != "spoof" {
		t.Errorf("data[body] = %#v, want the parsed object", d["body"])
	}
	if got, ok := d["headers"].(map[string]string); !ok || got["X-Request-ID"] != "r1" || got["content-type"] != "application/json" {
		t.Errorf("data[headers] = %#v, want the headers as given", d["headers"])
	}

	runMatchCases(t, []matchCase{
		{"reserved names win", `data["app"] == "app1" and data["id"] == "m1" and data["topic"] == "orders" and data["http_method"] == "patch" and data["headers"]["X-Request-ID"] == "r1"`, d, true, false},
		{"top-level body key", `data["k"] == "v" and data["n"][0] == 1`, d, true, false},
		{"body not JSON is the string", `data["body"] == "hello, world"`, msg("POST", nil, `hello, world`), true, false},
		{"empty body is the empty string", `data["body"] == ""`, msg("POST", nil, ``), true, false},
		{"scalar JSON body", `data["body"] == 42`, msg("POST", nil, ` 42 `), true, false},
		{"list JSON body has no top-level keys", `data["body"][1] == "b" and data["0"] == None`, msg("POST", nil, `["a","b"]`), true, false},
	})
}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	long := `True` + strings.Repeat(" ", MaxFilterLen) // valid but for its length
	deep := strings.Repeat(`1 + `, 1001) + `1`
	for _, tc := range []struct{ name, filter, want string }{
		{"syntax", `data["x"] ==`, "unexpected token"},
		{"unclosed", `data["x"`, ""},
		{"unknown variable", `foo == 1`, "unknown name foo"},
		{"unknown variable in get", `data[foo]`, "unknown name foo"},
		{"unknown function", `nofunc(1)`, "unknown name nofunc"},
		{"unknown function in an and", `nofunc(1) and True`, "unknown name nofunc"},
		{"disabled builtin", `repeat("a", 1000)`, "repeat"},
		{"predicate", `all(data["l"], # > 0)`, "all is not allowed"},
		{"let", `let a = data; a`, ""},
		{"too many nodes", deep, "node"},
		{"too long", long, "longer than"},
		{"python lambda", `lambda: 1`, ""},
		{"python import", `__import__("os").system("true")`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, err := CompileFilter(tc.filter)
			if err == nil {
				t.Fatalf("CompileFilter(%q) = %v, want an error", tc.filter, f)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "filter: ") || len(msg) <= len("filter: ") || !strings.Contains(msg, tc.want) {
				t.Fatalf("CompileFilter(%q) error %q, want it to contain %q", tc.filter, msg, tc.want)
			}
		})
	}
	if len(deep) > MaxFilterLen {
		t.Fatalf("the too-many-nodes filter is %d bytes, so it tests the length limit instead", len(deep))
	}
}

func TestRuntimeErrors(t *testing.T) {
	t.Parallel()
	d := msg("POST", nil, `{"s":"str","x":1}`)
	runMatchCases(t, []matchCase{
		{"string < number", `data["body"]["s"] < 1`, d, false, true},
		{"null < number", `data["missing"] < 1`, d, false, true},
		{"len of null", `len(data["missing"]) > 0`, d, false, true},
		{"method call", `data["s"].lower() == "str"`, d, false, true},
		{"memory budget", `len(1..10000000) > 0`, d, false, true},
		{"string + number", `data["s"] + 1 == 1`, d, false, true},
		{"number in string", `1 in data["s"]`, d, false, true},
		{"long concatenation", `len(` + strings.Repeat(`data["body"]["big"] + `, 20) + `"") > 0`, msg("POST", nil, `{"big":"`+strings.Repeat("a", 4<<10)+`"}`), false, true},
		{"error after or is not reached", `data["x"] or data["s"] < 1`, d, true, false},
	})
}

// TestNoPanic feeds hostile filters and data; any outcome but a panic is
// fine.
func TestNoPanic(t *testing.T) {
	t.Parallel()
	datas := []Data{
		nil,
		{},
		{"data": Data{"x": nil}},
		msg("POST", nil, `{"x":[null,{"y":[[]]}],"s":"\u0000"}`),
		{"body": make(chan int), "headers": map[int]int{1: 1}, "x": []string{"a"}, "f": func() {}},
	}
	for _, src := range fuzzSeeds {
		f, err := CompileFilter(src)
		if err != nil {
			continue
		}
		for _, d := range datas {
			_, _ = f.Match(d)
		}
	}
}

var fuzzSeeds = []string{
	``, `True`, `data`, `data["x"]`, `data["x"][0]["y"]`, `data.x.y.z`, `data?.x?.y`,
	`data["x"] == 1 and data["y"] or not data["z"]`, `data["x"][1:2]`, `data["x"][-1]`,
	`$env`, `$env["data"]["x"]`, `data["x"] ?? data["y"]`, `data["x"] ? 1 : 2`,
	`len(data)`, `len(data["body"])`, `int(data["x"])`, `string(data)`, `type(data["f"])`,
	`data["x"] matches "("`, `data["s"] matches data["s"]`, `data["x"] + data["x"]`,
	`1 / 0`, `1 % 0`, `-data["x"]`, `data["x"] in data["x"]`, `data["x"] contains "a"`,
	`[data, data][1]`, `{"a": data}["a"]["x"]`, `1..3`, `data["x"] | len()`,
	`get(data, truthy(data))`, `truthy()`, `get(1)`, `data()`, `data.x()`,
}

func FuzzCompileFilter(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, `{"x":1,"y":"z","l":[1,{"a":null}]}`)
	}
	f.Fuzz(func(t *testing.T, src, body string) {
		flt, err := CompileFilter(src)
		if err != nil {
			return
		}
		d := MessageData("a", "t", "i", "POST", map[string]string{"y": "z"}, []byte(body))
		_, _ = flt.Match(d)
		if json.Valid([]byte(body)) {
			_, _ = flt.Match(Data{"body": d["body"]})
		}
	})
}

func TestFilterConcurrentMatch(t *testing.T) {
	t.Parallel()
	f, err := CompileFilter(`data["body"]["x"] == 1 and data["headers"]["y"] == "z" or data["special_key"] == "special value"`)
	if err != nil {
		t.Fatal(err)
	}
	yes := msg("POST", map[string]string{"y": "z"}, `{"x":1}`)
	no := msg("POST", map[string]string{"y": "z"}, `{"x":2}`)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 200 {
				d, want := yes, true
				if i%2 == 1 {
					d, want = no, false
				}
				if got, err := f.Match(d); got != want || err != nil {
					t.Errorf("Match = %v, %v; want %v", got, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	if f.Source() == "" {
		t.Error("Source() is empty")
	}
}

func TestFilterCache(t *testing.T) {
	t.Parallel()
	c := NewFilterCache(2)
	var compiles atomic.Int32
	c.compile = func(src string) (*Filter, error) {
		compiles.Add(1)
		return CompileFilter(src)
	}

	f1, err := c.Get("sub1", 1, `data["x"] == 1`)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := c.Get("sub1", 1, `data["x"] == 1`); again != f1 || compiles.Load() != 1 {
		t.Fatalf("same revision: got %p (first %p), %d compiles; want the same filter, 1 compile", again, f1, compiles.Load())
	}
	f2, _ := c.Get("sub1", 2, `data["x"] == 2`)
	if f2 == f1 || f2.Source() != `data["x"] == 2` || compiles.Load() != 2 {
		t.Fatalf("new revision: got %q, %d compiles; want a recompile", f2.Source(), compiles.Load())
	}
	if old, _ := c.Get("sub1", 1, `data["x"] == 1`); old.Source() != `data["x"] == 1` || compiles.Load() != 3 {
		t.Fatalf("older revision: got %q, %d compiles; want it compiled", old.Source(), compiles.Load())
	}
	if again, _ := c.Get("sub1", 2, `data["x"] == 2`); again != f2 {
		t.Fatal("an older revision evicted the newer one")
	}
	compiles.Add(-1) // the uncached older revision
	if _, err := c.Get("bad", 1, `data[`); err == nil {
		t.Fatal("bad filter: no error")
	}
	if _, err := c.Get("bad", 1, `data[`); err == nil || compiles.Load() != 3 {
		t.Fatalf("bad filter again: %v, %d compiles; want the cached error", err, compiles.Load())
	}
	// A third key overflows the cache of 2, which starts afresh.
	_, _ = c.Get("sub3", 1, `True`)
	if _, _ = c.Get("sub1", 2, `data["x"] == 2`); compiles.Load() != 5 {
		t.Fatalf("after overflow: %d compiles, want 5", compiles.Load())
	}

	// Concurrent gets of the same revisions compile each once (-race).
	c = NewFilterCache(100)
	compiles.Store(0)
	c.compile = func(src string) (*Filter, error) {
		compiles.Add(1)
		return CompileFilter(src)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				key := []string{"a", "b", "c"}[(i+j)%3]
				f, err := c.Get(key, 7, `data["k"] == "`+key+`"`)
				if err != nil {
					t.Error(err)
					return
				}
				if ok, err := f.Match(Data{"k": key}); !ok || err != nil {
					t.Errorf("filter for %s: %v, %v", key, ok, err)
				}
			}
		})
	}
	wg.Wait()
	if n := compiles.Load(); n != 3 {
		t.Fatalf("%d compiles for 3 keys at one revision, want 3", n)
	}
}

package luascripts

import (
	"regexp"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestFieldsInlined: no script the store runs still refers to the table F
// or builds it, or refers to a field's position I.<name>; every field name
// and position went in as a literal.
func TestFieldsInlined(t *testing.T) {
	ref := regexp.MustCompile(`\bF\.\w+|local F = \{|\bI\.\w+`)
	if len(sources) != len(All) {
		t.Fatalf("%d sources for %d scripts", len(sources), len(All))
	}
	for i, sc := range All {
		if m := ref.FindString(sources[sc]); m != "" {
			t.Errorf("script %d still has %q", i, m)
		}
	}
	if src := sources[FinishMany]; !strings.Contains(src, "'s'") || !strings.Contains(src, "'hi'") {
		t.Errorf("finishmany.lua without the literal field names of status and history")
	}
}

// TestInlineFieldsPositions: I.<name> becomes the field's position in
// FIELDS (1-based, as Lua indexes), F.<name> its name.
func TestInlineFieldsPositions(t *testing.T) {
	got := inlineFields("local F = {\n  url = 'u', status = 's',\n}\nlocal FIELDS = {\n  F.url, F.status,\n}\nreturn v[I.status], F.url, I.url\n")
	want := "local FIELDS = {\n  'u', 's',\n}\nreturn v[2], 'u', 1\n"
	if got != want {
		t.Errorf("inlineFields:\n%s\nwant\n%s", got, want)
	}
}

// TestInlineFieldsRefusesUnknown: a reference to a field F (or FIELDS)
// does not have is a build-time failure, not a nil field at run time.
func TestInlineFieldsRefusesUnknown(t *testing.T) {
	const tables = "local F = {\n  status = 's',\n}\nlocal FIELDS = {\n  F.status,\n}\n"
	for _, body := range []string{"return F.nope\n", "return v[I.nope]\n"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("no panic for %q", body)
				}
			}()
			inlineFields(tables + body)
		}()
	}
}

// TestScriptsCarryWhatTheyUse: each script carries the prelude's
// definitions it uses, directly or through another (a name it uses without
// its definition would fail its first call), and not the others: a claim
// has no use for the finish's helpers, the health check for any.
func TestScriptsCarryWhatTheyUse(t *testing.T) {
	defs := topLocal.FindAllStringSubmatch(prelude, -1)
	for _, sc := range All {
		src := sources[sc]
		code := luaComment.ReplaceAllString(src, "")
		words := map[string]bool{}
		for _, w := range luaName.FindAllString(code, -1) {
			words[w] = true
		}
		for _, d := range defs {
			for _, name := range definedName.FindAllString(d[1], -1) {
				if name == "F" {
					continue // inlined (inlineFields)
				}
				if words[name] && !strings.Contains(src, d[0]) {
					t.Errorf("a script uses %s without its definition %q:\n%.300s", name, d[0], src)
				}
			}
		}
	}
	carries := func(sc *redis.Script, def string) bool {
		return strings.Contains(sources[sc], "local function "+def+"(")
	}
	if !carries(FinishMany, "ack_event") || !carries(FinishMany, "retry_event") || !carries(FinishMany, "now_ms") {
		t.Error("finishmany.lua lacks ack_event, retry_event or now_ms")
	}
	for _, def := range []string{"ack_event", "retry_event", "add_event", "finish_attempt"} {
		if carries(Claim, def) {
			t.Errorf("claim.lua carries %s, which it does not use", def)
		}
	}
	if n := len(sources[Ping]); n > len(prelude)/4 {
		t.Errorf("ping.lua is %d bytes with what it carries of the prelude's %d", n, len(prelude))
	}
}

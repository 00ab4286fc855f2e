package luascripts

import (
	"regexp"
	"strings"
	"testing"
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

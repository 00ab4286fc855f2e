package luascripts

import (
	"regexp"
	"strings"
	"testing"
)

// TestFieldsInlined: no script the store runs still refers to the table F
// or builds it; every field name went in as a literal.
func TestFieldsInlined(t *testing.T) {
	ref := regexp.MustCompile(`\bF\.\w+|local F = \{`)
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

// TestInlineFieldsRefusesUnknown: a reference to a field F does not have
// is a build-time failure, not a nil field at run time.
func TestInlineFieldsRefusesUnknown(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic for F.nope")
		}
	}()
	inlineFields("local F = {\n  status = 's',\n}\nreturn F.nope\n")
}

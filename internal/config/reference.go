package config

import (
	"errors"
	"fmt"
	"strings"
)

// The README's configuration reference lies between these markers;
// go generate ./internal/config (go run ./internal/config/gen) writes it
// from Settings, and a test fails when it differs.
const (
	ReferenceBegin = "<!-- config:begin (generated from internal/config/settings.go by go generate ./internal/config; do not edit) -->"
	ReferenceEnd   = "<!-- config:end -->"
)

// Reference is the configuration reference: a Markdown table of every
// setting.
func Reference() string {
	var b strings.Builder
	b.WriteString("| flag | environment | YAML | default | commands | meaning |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- |\n")
	fmt.Fprintf(&b, "| `--config` | `%s` | | none | every command but `version` | the YAML file (Cassata's keys, or the original Cassata's) |\n", ConfigEnv)
	for _, s := range Settings {
		flag := "none (a secret)"
		if s.Flag != "" {
			flag = "`--" + s.Flag + "`"
			if s.Kind() != "string" {
				flag += " " + s.Kind()
			}
		}
		yaml := "`" + s.YAML + "`"
		if len(s.Aliases) > 0 {
			yaml += " (original: `" + strings.Join(s.Aliases, "`, `") + "`)"
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s | %s | %s |\n", flag, s.Env, yaml, cell(s.DefaultText()),
			"`"+strings.Join(s.Commands, "`, `")+"`", cell(s.Usage))
	}
	return b.String()
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// ReplaceReference returns doc (the README) with the text between the
// markers replaced by Reference.
func ReplaceReference(doc string) (string, error) {
	i := strings.Index(doc, ReferenceBegin)
	j := strings.Index(doc, ReferenceEnd)
	if i < 0 || j < i {
		return "", errors.New("no configuration reference markers (" + ReferenceBegin + " ... " + ReferenceEnd + ")")
	}
	return doc[:i+len(ReferenceBegin)] + "\n" + Reference() + doc[j:], nil
}

package archive

import (
	"slices"
	"strings"
	"unicode/utf8"
)

// headersJSON encodes a request's headers for the headers column exactly as
// json.Marshal does (keys sorted, HTML characters, U+2028/U+2029 and
// control characters escaped, invalid UTF-8 replaced by U+FFFD), without
// its reflection: Write encodes the headers of every create and final
// record. TestHeadersJSONIsJSONMarshal and FuzzHeadersJSON hold it to
// json.Marshal's output byte for byte.
func headersJSON(h map[string]string) string {
	var small [8]string
	keys := small[:0]
	n := 2
	for k, v := range h {
		keys = append(keys, k)
		n += len(k) + len(v) + 6
	}
	slices.Sort(keys)
	var b strings.Builder
	b.Grow(n)
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		writeJSONString(&b, k)
		b.WriteByte(':')
		writeJSONString(&b, h[k])
	}
	b.WriteByte('}')
	return b.String()
}

const hexDigits = "0123456789abcdef"

// writeJSONString writes s as a JSON string the way encoding/json does
// with HTML escaping on (json.Marshal's default).
func writeJSONString(dst *strings.Builder, s string) {
	dst.WriteByte('"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			dst.WriteString(s[start:i])
			switch c {
			case '"', '\\':
				dst.WriteByte('\\')
				dst.WriteByte(c)
			case '\b':
				dst.WriteString(`\b`)
			case '\f':
				dst.WriteString(`\f`)
			case '\n':
				dst.WriteString(`\n`)
			case '\r':
				dst.WriteString(`\r`)
			case '\t':
				dst.WriteString(`\t`)
			default: // other control characters, <, > and &
				dst.WriteString(`\u00`)
				dst.WriteByte(hexDigits[c>>4])
				dst.WriteByte(hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst.WriteString(s[start:i])
			dst.WriteString(`\ufffd`)
		case r == '\u2028' || r == '\u2029':
			dst.WriteString(s[start:i])
			dst.WriteString(`\u202`)
			dst.WriteByte(hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst.WriteString(s[start:])
	dst.WriteByte('"')
}

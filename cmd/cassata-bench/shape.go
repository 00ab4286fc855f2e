package main

import (
	"fmt"
	"hash/fnv"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// --shape values: what each bench event looks like on the wire.
const (
	// shapeRealistic is a webhook as applications send them: the sink's
	// URL with a ~40-byte query string that differs per event, a 100-byte
	// JSON body that differs per event and a Content-Type header.
	shapeRealistic = "realistic"
	// shapeSmall is the bench's original event: the bare sink URL, the
	// same 100 digits as body and one X-Bench header.
	shapeSmall = "small"
)

// realisticBodyLen is the size of a realistic event's JSON body.
const realisticBodyLen = 100

const (
	// idsSeq: the bench's short ids ("burst-42").
	idsSeq = "seq"
	// idsUUID: UUID-shaped ids (36 bytes), as clients' own ids often are.
	idsUUID = "uuid"
)

// eventID is the id an event with the bench's short id gets under --ids:
// the short id itself, or a UUID-shaped id derived from it (a 128-bit
// FNV-1a hash with the version and variant bits of a random UUID), the
// same for the same short id on every run, so runs compare.
func (b *bench) eventID(short string) string {
	if b.opts.ids != idsUUID {
		return short
	}
	return uuidOf(short)
}

func uuidOf(s string) string {
	h := fnv.New128a()
	_, _ = h.Write([]byte(s))
	u := h.Sum(nil)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// benchBody is the small shape's 100-byte body.
var benchBody = strings.Repeat("0123456789", 10)

var (
	smallHeaders     = map[string]string{"X-Bench": "1"}
	realisticHeaders = map[string]string{"Content-Type": "application/json"}
)

// payload is what a bench event, message, subscription or schedule sends:
// where, with which headers and body.
type payload struct {
	URL     string
	Headers map[string]string
	Body    string
}

// payloadFor is the payload of the event key ("<app>/<id>", or any string
// naming the object) in shape sh, sent to base (the sink's URL). A
// realistic payload's numbers come from a hash of key, so they vary from
// event to event yet a retried create sends the same bytes.
func payloadFor(sh, base, key string) payload {
	if sh == shapeSmall {
		return payload{URL: base, Headers: smallHeaders, Body: benchBody}
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	n := h.Sum64()
	customer := fmt.Sprintf("c-%06d", n%1_000_000)
	order := fmt.Sprintf("o-%08d", (n/1_000_000)%100_000_000)
	lang := langs[(n>>50)%uint64(len(langs))]
	return payload{
		URL:     base + "?customer=" + customer + "&order=" + order + "&lang=" + lang,
		Headers: realisticHeaders,
		Body:    realisticBody(customer, order, n),
	}
}

var langs = []string{"en", "de", "fr", "it", "es", "nl", "pt", "pl"}

// realisticBody is a JSON object of exactly realisticBodyLen bytes: an
// order event whose amount and item count vary with n, padded to size
// with a note.
func realisticBody(customer, order string, n uint64) string {
	head := `{"event":"paid","customer":"` + customer + `","order":"` + order +
		`","cents":` + strconv.FormatUint(100+(n>>20)%99_900, 10) +
		`,"items":` + strconv.FormatUint(1+(n>>40)%9, 10) + `,"note":"`
	const tail = `"}`
	// head is at most 91 bytes, so the note is 7 to 9 letters.
	pad := max(0, realisticBodyLen-len(head)-len(tail))
	return head + strings.Repeat("x", pad) + tail
}

// newEvent builds a bench event of shape sh: POST to the sink (base) with
// the shape's query string, headers and body, due at at (millisecond
// precision).
func newEvent(sh, app, id, base string, at time.Time) event {
	p := payloadFor(sh, base, app+"/"+id)
	return event{
		App:     app,
		ID:      id,
		URL:     p.URL,
		Method:  http.MethodPost,
		Headers: p.Headers,
		Body:    p.Body,
		At:      formatAt(at),
	}
}

// shapeLegend says what the events of shape sh look like, for the report.
func shapeLegend(sh string) string {
	if sh == shapeSmall {
		return "small (bare sink URL, 100-byte body of digits, header X-Bench)"
	}
	return fmt.Sprintf("realistic (sink URL + %d-byte query string varying per event, %d-byte JSON body varying per event, "+
		"Content-Type: application/json)", len(sampleQuery()), realisticBodyLen)
}

// sampleQuery is the query string of one realistic event, with its "?".
func sampleQuery() string { return payloadFor(shapeRealistic, "", "app/id").URL }

// event is a bench event of the --shape to the sink.
func (b *bench) event(app, id string, at time.Time) event {
	return newEvent(b.opts.shape, app, id, b.sink.URL(), at)
}

package archive

import (
	"reflect"
	"testing"
	"unsafe"
)

func TestBoxReusesOnlyAnEqualValue(t *testing.T) {
	t.Parallel()
	var b box[string]
	first := b.of("w1")
	if again := b.of("w" + "1"[:1]); again != "w1" || again != first {
		t.Errorf("of(w1) again = %v, want w1", again)
	}
	if got := b.of("w2"); got != "w2" {
		t.Errorf("of(w2) after w1 = %v, want w2", got)
	}
	if got := b.of(""); got != "" {
		t.Errorf("of(\"\") = %v, want the empty string (not NULL)", got)
	}
	if got := b.opt(opt[string]{}); got != nil {
		t.Errorf("opt(none) = %v, want nil (NULL)", got)
	}
	if got := b.opt(some("w3")); got != "w3" {
		t.Errorf("opt(w3) = %v, want w3", got)
	}
	var n box[int64]
	if got := n.of(30000); got != int64(30000) {
		t.Errorf("of(30000) = %#v, want int64(30000)", got)
	}
	if got := n.of(0); got != int64(0) {
		t.Errorf("of(0) after 30000 = %#v, want int64(0)", got)
	}
}

// TestCreateOnlyCoversEveryOtherColumn: a row goes through the narrow
// statement only when it sets nothing outside createColumns, so a column
// added to eventRow without a thought for createOnly would be dropped from
// such rows. Each field outside the narrow set, set alone, must make the
// row wide; the narrow statement's values must be the narrow set.
func TestCreateOnlyCoversEveryOtherColumn(t *testing.T) {
	t.Parallel()
	narrow := map[string]bool{"app": true, "id": true, "createdMS": true, "url": true, "method": true, "dueMS": true,
		"status": true, "attempts": true, "updatedMS": true, "flowKey": true}
	base := eventRow{app: "shop", id: "e1", createdMS: 1, url: some("https://example.com/"), method: some("POST"),
		dueMS: some(int64(2)), status: "PENDING", attempts: some(int64(0)), updatedMS: 1, flowKey: some("k")}
	if !base.createOnly() {
		t.Fatal("a row with only the narrow columns is not createOnly")
	}
	typ := reflect.TypeOf(base)
	if len(narrow) != numCreateColumns || typ.NumField() != numEventColumns {
		t.Fatalf("eventRow has %d fields for %d columns, the narrow set %d for %d", typ.NumField(), numEventColumns,
			len(narrow), numCreateColumns)
	}
	for i := range typ.NumField() {
		f := typ.Field(i)
		if narrow[f.Name] {
			continue
		}
		row := base
		v := reflect.ValueOf(&row).Elem().Field(i)
		v = reflect.NewAt(v.Type(), unsafe.Pointer(v.UnsafeAddr())).Elem()
		switch {
		case v.Kind() == reflect.Slice:
			v.Set(reflect.ValueOf([]byte{}))
		case v.Kind() == reflect.Struct && v.NumField() == 2: // opt[T]: set ok
			ok := v.Field(1)
			reflect.NewAt(ok.Type(), unsafe.Pointer(ok.UnsafeAddr())).Elem().SetBool(true)
		default:
			t.Fatalf("field %s (%s): teach this test how to set it", f.Name, v.Type())
		}
		if row.createOnly() {
			t.Errorf("a row that sets %s is createOnly: the narrow statement would drop it", f.Name)
		}
	}
	c := createRow(base)
	var b boxes
	if got := len(c.appendArgs(nil, &b)); got != numCreateColumns {
		t.Errorf("createRow.appendArgs gives %d values, want %d", got, numCreateColumns)
	}
}

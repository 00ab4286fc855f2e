package web

import (
	"strconv"

	"github.com/cassata/cassata/scheduler/flow"
)

// View models of the Flows page (flows.go fills them, flows.templ renders
// them).

// flowsView is the Flows page.
type flowsView struct {
	// App is the application filter as typed.
	App        string
	Rows       []flowRow
	Form       flowForm
	PausedApps []appPauseRow
	// Pause is the application pause form, with its refusal.
	Pause appPauseForm
}

// flowRow is one flow key with its limits and what it holds now.
type flowRow struct {
	App, Key          string
	Rate, Parallelism string // "—" for no limit
	State, StateClass string
	Paused            bool
	InFlight, Held    string
	Path, Edit        string // the key's action path; the page with the form filled
}

// flowForm is the form that sets a key's limits, as typed.
type flowForm struct {
	App, Key, Rate, Parallelism string
	Paused                      bool
	Error                       *fieldError
}

// Invalid reports whether field is the one at fault.
func (f flowForm) Invalid(field string) bool { return f.Error != nil && f.Error.Field == field }

// appPauseForm is the form that pauses an application, as typed.
type appPauseForm struct {
	App   string
	Error *fieldError
}

// appPauseRow is a paused application.
type appPauseRow struct {
	App, Held string
}

// formatRate shows requests per second without trailing zeros.
func formatRate(r float64) string { return strconv.FormatFloat(r, 'f', -1, 64) }

func newFlowRow(st *flow.State) flowRow {
	r := flowRow{App: st.App, Key: st.Key, Rate: "—", Parallelism: "—", Paused: st.Paused,
		InFlight: strconv.Itoa(st.InFlight), Held: strconv.Itoa(st.Held),
		Path: flowPath(st.App, st.Key), Edit: "/flows?edit=" + urlQueryEscape(st.App+"/"+st.Key)}
	if st.Rate > 0 {
		r.Rate = formatRate(st.Rate) + "/s"
	}
	if st.Parallelism > 0 {
		r.Parallelism = strconv.Itoa(st.Parallelism)
	}
	r.State, r.StateClass = "active", "badge badge-completed"
	if st.Paused {
		r.State, r.StateClass = "paused", "badge badge-cancelled"
	}
	return r
}

// newFlowForm fills the form with a key's stored limits.
func newFlowForm(st *flow.State) flowForm {
	f := flowForm{App: st.App, Key: st.Key, Paused: st.Paused}
	if st.Rate > 0 {
		f.Rate = formatRate(st.Rate)
	}
	if st.Parallelism > 0 {
		f.Parallelism = strconv.Itoa(st.Parallelism)
	}
	return f
}

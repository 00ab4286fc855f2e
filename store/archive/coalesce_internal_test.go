package archive

import "testing"

func TestCoalesceMergesARunByTheUpsertRule(t *testing.T) {
	t.Parallel()
	p, n := some[string], some[int64]
	create := eventRow{app: "a", id: "e", createdMS: 1, url: p("https://x/1"), method: p("POST"), dueMS: n(10),
		status: "PENDING", attempts: n(0), maxAttempts: n(5), updatedMS: 1}
	attempt := eventRow{app: "a", id: "e", createdMS: 1, dueMS: n(20), status: "PENDING", attempts: n(1),
		lastStatusCode: n(503), lastError: p("503"), worker: p("w1"), updatedMS: 15}
	final := eventRow{app: "a", id: "e", createdMS: 1, headers: p("{}"), body: []byte{}, status: "COMPLETED",
		attempts: n(2), lastStatusCode: n(200), finishedMS: n(30), updatedMS: 30}
	other := eventRow{app: "a", id: "e", createdMS: 2, status: "PENDING", updatedMS: 40} // another run

	got := coalesce([]eventRow{create, attempt, final, other})
	if len(got) != 2 {
		t.Fatalf("%d rows, want 2 (one per run)", len(got))
	}
	m := got[0]
	switch {
	case m.url != p("https://x/1") || m.method != p("POST") || m.maxAttempts != n(5):
		t.Errorf("what only the create told was lost: %+v", m)
	case m.dueMS != n(20) || m.attempts != n(2) || m.lastStatusCode != n(200) || m.lastError != p("503") || m.worker != p("w1"):
		t.Errorf("the newest told value of each column should win: %+v", m)
	case m.status != "COMPLETED" || m.finishedMS != n(30) || m.updatedMS != 30 || m.body == nil || m.headers != p("{}"):
		t.Errorf("status, finished_ms, updated_ms and body are the final's: %+v", m)
	}
	if got[1].createdMS != 2 {
		t.Errorf("the second run was merged into the first: %+v", got[1])
	}
}

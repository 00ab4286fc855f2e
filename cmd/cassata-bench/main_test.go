package main

import (
	"io"
	"slices"
	"testing"
)

func TestParseFlags(t *testing.T) {
	t.Parallel()
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.only, []string{"burst", "steady", "ingest", "memory", "archive", "topic-fanout", "topic-steady", "flows-steady", "schedules-minute", "schedules-idle"}) || o.runs != 1 || o.schedules != 100_000 ||
		o.burst != 20000 || o.steady != 10000 || o.memory != 50000 || o.backlog != 0 ||
		o.topicSubscribers != 1000 || o.topicSteadySubs != 10 || o.topicRate != 200 || topicMessages(o) != 2000 ||
		o.flowKeys != 100 || o.flowParallelism != 10 || o.shape != shapeRealistic || o.ids != idsSeq {
		t.Errorf("defaults = %+v", o)
	}

	o, err = parseFlags([]string{"--only", "memory, burst,burst", "--runs", "3", "--backlog", "1000000"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.only, []string{"memory", "burst"}) || o.runs != 3 || o.backlog != 1_000_000 {
		t.Errorf("parsed = %+v", o)
	}
	if o, err = parseFlags([]string{"--shape", "small"}, io.Discard); err != nil || o.shape != shapeSmall {
		t.Errorf("parsed = %+v", o)
	}
	if o, err = parseFlags([]string{"--ids", "uuid"}, io.Discard); err != nil || o.ids != idsUUID {
		t.Errorf("parsed = %+v", o)
	}

	for _, bad := range [][]string{
		{"--only", "nope"}, {"--only", ","}, {"--runs", "0"}, {"--workers", "0"}, {"--ingest-time", "0s"}, {"extra"},
		{"--topic-subscribers", "0"}, {"--topic-rate", "0"}, {"--topic-span", "1ms"}, {"--schedules", "0"},
		{"--flow-keys", "0"}, {"--flow-parallelism", "0"}, {"--shape", "huge"}, {"--ids", "nope"},
	} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) should fail", bad)
		}
	}
}

package main

import "testing"

func TestParseUsedMemory(t *testing.T) {
	t.Parallel()
	info := "# Memory\r\nused_memory:1034552\r\nused_memory_human:1010.30K\r\nused_memory_rss:7000000\r\n"
	got, err := parseUsedMemory(info)
	if err != nil || got != 1034552 {
		t.Errorf("parseUsedMemory = %d, %v; want 1034552", got, err)
	}
	if _, err := parseUsedMemory("# Memory\r\n"); err == nil {
		t.Error("parseUsedMemory without the field should fail")
	}
}

package redisstore

import (
	"strings"
	"testing"
)

func TestParseNodeInfo(t *testing.T) {
	info := "# Server\r\nredis_version:7.0.15\r\nrun_id:abc123\r\n\r\n# Memory\r\nmaxmemory_policy:allkeys-lru\r\n" +
		"# Persistence\r\naof_enabled:1\r\n"
	n := parseNodeInfo("127.0.0.1:6379", info)
	want := NodeInfo{Addr: "127.0.0.1:6379", RunID: "abc123", Version: "7.0.15", MaxmemoryPolicy: "allkeys-lru", AOF: true}
	if n != want {
		t.Errorf("parseNodeInfo = %+v, want %+v", n, want)
	}
	if n := parseNodeInfo("x", "aof_enabled:0\n"); n.AOF {
		t.Error("aof_enabled:0 read as on")
	}
}

func TestCheckNoEviction(t *testing.T) {
	if err := CheckNoEviction([]NodeInfo{{Addr: "a", MaxmemoryPolicy: "noeviction"}}); err != nil {
		t.Errorf("noeviction: %v", err)
	}
	err := CheckNoEviction([]NodeInfo{
		{Addr: "a:1", MaxmemoryPolicy: "noeviction"}, {Addr: "b:2", MaxmemoryPolicy: "volatile-lru"},
	})
	if err == nil || !strings.Contains(err.Error(), `b:2 has "volatile-lru"`) || strings.Contains(err.Error(), "a:1") ||
		!strings.Contains(err.Error(), "maxmemory-policy noeviction") {
		t.Errorf("CheckNoEviction = %v; want the bad node named and the fix", err)
	}
}

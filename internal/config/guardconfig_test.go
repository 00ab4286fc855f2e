package config

import (
	"strings"
	"testing"
)

func TestConfigAllowCIDRs(t *testing.T) {
	t.Setenv("CASSATA_REDIS_URL", "redis://x:6379/0")

	t.Run("default: guard on, nothing allowed", func(t *testing.T) {
		c, _, err := Load("server", nil)
		if err != nil {
			t.Fatal(err)
		}
		g := c.Guard()
		if g == nil || len(g.Allow) != 0 {
			t.Fatalf("guard = %+v, want on with an empty allow-list", g)
		}
	})
	t.Run("env", func(t *testing.T) {
		t.Setenv("CASSATA_ALLOW_CIDRS", "10.1.0.0/16, fd00::/8,127.0.0.1")
		c, _, err := Load("worker", nil)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range c.Guard().Allow {
			got = append(got, p.String())
		}
		if strings.Join(got, " ") != "10.1.0.0/16 fd00::/8 127.0.0.1/32" {
			t.Fatalf("allow = %v", got)
		}
	})
	t.Run("yaml and flag", func(t *testing.T) {
		p := writeYAML(t, "allow_cidrs: 192.168.0.0/16\n")
		c, _, err := Load("server", []string{"--config", p})
		if err != nil || len(c.Guard().Allow) != 1 || c.Guard().Allow[0].String() != "192.168.0.0/16" {
			t.Fatalf("yaml: %v, %+v", err, c.allow)
		}
		c, _, err = Load("server", []string{"--config", p, "--allow-cidrs", "10.0.0.0/8"})
		if err != nil || len(c.allow) != 1 || c.allow[0].String() != "10.0.0.0/8" {
			t.Fatalf("flag: %v, %+v", err, c.allow)
		}
	})
	t.Run("guard off", func(t *testing.T) {
		t.Setenv("CASSATA_BLOCK_PRIVATE", "off")
		t.Setenv("CASSATA_ALLOW_CIDRS", "10.0.0.0/8")
		c, _, err := Load("server", nil)
		if err != nil || c.Guard() != nil {
			t.Fatalf("guard = %+v, %v; want none", c.Guard(), err)
		}
	})
	t.Run("dev: guard off by default", func(t *testing.T) {
		c, _, err := Load("dev", nil)
		if err != nil || c.Guard() != nil {
			t.Fatalf("dev guard = %+v, %v", c.Guard(), err)
		}
	})
	for _, bad := range []string{"10.1.2.3/16", "10.0.0.0/33", "intranet", "10.0.0.0/8 fd00::/8", "fe80::1%eth0"} {
		t.Run("refused "+bad, func(t *testing.T) {
			t.Setenv("CASSATA_ALLOW_CIDRS", bad)
			_, _, err := Load("server", nil)
			if err == nil || !strings.Contains(err.Error(), "CASSATA_ALLOW_CIDRS") {
				t.Fatalf("load = %v, want an error naming CASSATA_ALLOW_CIDRS", err)
			}
		})
	}
}

func TestConfigMaxBodyBytes(t *testing.T) {
	t.Setenv("CASSATA_REDIS_URL", "redis://x:6379/0")
	t.Setenv("CASSATA_MAX_BODY_BYTES", "65536")
	c, _, err := Load("server", nil)
	if err != nil || c.MaxBodyBytes != 65536 {
		t.Fatalf("MaxBodyBytes = %d, %v", c.MaxBodyBytes, err)
	}
	for _, bad := range []string{"-1", "lots", "1000000000"} {
		t.Setenv("CASSATA_MAX_BODY_BYTES", bad)
		if _, _, err := Load("server", nil); err == nil || !strings.Contains(err.Error(), "CASSATA_MAX_BODY_BYTES") {
			t.Errorf("CASSATA_MAX_BODY_BYTES=%s: %v, want an error naming it", bad, err)
		}
	}
}

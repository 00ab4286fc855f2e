package flow_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/cassata/cassata/scheduler"
	"github.com/cassata/cassata/scheduler/flow"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := []struct {
		app, key string
		l        flow.Limits
	}{
		{"shop", "hooks.example.com", flow.Limits{}},
		{"shop", "tenant:42", flow.Limits{Rate: 0.5, Parallelism: 1, Paused: true}},
		{"shop", strings.Repeat("k", 128), flow.Limits{Rate: flow.MaxRate, Parallelism: flow.MaxParallelism}},
	}
	for _, c := range ok {
		if err := flow.Validate(c.app, c.key, c.l); err != nil {
			t.Errorf("Validate(%q, %q, %+v) = %v", c.app, c.key, c.l, err)
		}
	}
	bad := []struct {
		app, key string
		l        flow.Limits
		field    string
	}{
		{"", "k", flow.Limits{}, "app"},
		{"shop", "", flow.Limits{}, "key"},
		{"shop", "a/b", flow.Limits{}, "key"},
		{"shop", strings.Repeat("k", 129), flow.Limits{}, "key"},
		{"shop", "k", flow.Limits{Rate: -1}, "rate"},
		{"shop", "k", flow.Limits{Rate: math.NaN()}, "rate"},
		{"shop", "k", flow.Limits{Rate: math.Inf(1)}, "rate"},
		{"shop", "k", flow.Limits{Parallelism: -1}, "parallelism"},
		{"shop", "k", flow.Limits{Parallelism: flow.MaxParallelism + 1}, "parallelism"},
	}
	for _, c := range bad {
		err := flow.Validate(c.app, c.key, c.l)
		var ve *scheduler.ValidationError
		if !errors.As(err, &ve) || ve.Field != c.field {
			t.Errorf("Validate(%q, %q, %+v) = %v; want a validation error of field %s", c.app, c.key, c.l, err, c.field)
		}
	}
}

func TestLimited(t *testing.T) {
	t.Parallel()
	if (flow.Limits{Paused: true}).Limited() {
		t.Error("a pause alone is not a rate or parallelism limit")
	}
	if !(flow.Limits{Rate: 1}).Limited() || !(flow.Limits{Parallelism: 1}).Limited() {
		t.Error("rate or parallelism limits")
	}
}

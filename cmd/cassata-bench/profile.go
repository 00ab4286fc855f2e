package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// profileAll starts CPU profiles of the server and every worker of d for
// the given time (whole seconds, at least 1) and returns a function that
// waits for them and writes <dir>/<run>-server.pprof and
// <run>-worker<i>.pprof. Read them with `go tool pprof -top <file>`.
// Without --profile it does nothing.
func (b *bench) profileAll(ctx context.Context, d *deployment, run string, d2 time.Duration) (wait func()) {
	if b.opts.profile == "" {
		return func() {}
	}
	secs := max(1, int(d2.Round(time.Second)/time.Second))
	targets := map[string]string{run + "-server": d.serverAddr}
	for i, a := range d.workerAddrs {
		targets[fmt.Sprintf("%s-worker%d", run, i+1)] = a
	}
	var wg sync.WaitGroup
	for name, addr := range targets {
		wg.Go(func() {
			path := filepath.Join(b.opts.profile, name+".pprof")
			if err := fetchProfile(ctx, "http://"+addr+"/debug/pprof/profile?seconds="+strconv.Itoa(secs), path, secs); err != nil {
				slog.Warn("profile failed", "process", name, "err", err)
				return
			}
			slog.Info("profile written", "process", name, "path", path, "seconds", secs)
		})
	}
	return wg.Wait
}

func fetchProfile(ctx context.Context, url, path string, secs int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs+30)*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// startSimIn runs "sim --hosts 2" in-process with env and more flags,
// and returns its host records; the sim stops when the test ends, and
// must exit 0.
func startSimIn(t *testing.T, env map[string]string, flags ...string) []simHostRecord {
	t.Helper()
	ios, _, _, _ := Test()
	out, errOut := &syncBuffer{}, &syncBuffer{}
	ios.Out, ios.ErrOut = out, errOut
	f := NewFactory()
	f.IO = ios
	f.Getenv = func(k string) string { return env[k] }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- Execute(ctx, f, append([]string{"sim", "--listen", "127.0.0.1:0", "--hosts", "2", "-o", "jsonl"}, flags...))
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("sim exit %d after cancel", code)
			}
		case <-time.After(20 * time.Second):
			t.Error("sim did not stop")
		}
	})
	var lines []string
	deadline := time.Now().Add(20 * time.Second)
	for len(lines) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("sim printed no hosts; stderr %s", errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
		lines = strings.Split(strings.TrimSpace(out.String()), "\n")
	}
	var hosts []simHostRecord
	for _, l := range lines {
		var h simHostRecord
		if err := json.Unmarshal([]byte(l), &h); err != nil {
			t.Fatalf("sim line %q: %v", l, err)
		}
		hosts = append(hosts, h)
	}
	return hosts
}

// TestSimPasswordPerHost: each simulated host accepts its own password
// only: $BITSREMOTE_PASSWORD-SIM01, -SIM02, or generated ones, printed.
func TestSimPasswordPerHost(t *testing.T) {
	hosts := startSimIn(t, map[string]string{EnvPassword: "Base-Pw"}, "--password-per-host")
	if hosts[0].Password != "Base-Pw-SIM01" || hosts[1].Password != "Base-Pw-SIM02" {
		t.Fatalf("derived passwords: %+v", hosts)
	}
	for i, h := range hosts {
		for j, pw := range []string{"Base-Pw-SIM01", "Base-Pw-SIM02"} {
			want := ExitAuth
			if i == j {
				want = 0
			}
			r := run(t, map[string]string{EnvPassword: pw}, "list", "-H", h.Host, "-u", "admin", "--retries", "0")
			if r.code != want {
				t.Errorf("%s with %s's password: exit %d, want %d\n%s", h.Host, hosts[j].Machine, r.code, want, r.stderr)
			}
		}
	}

	gen := startSimIn(t, nil, "--password-per-host")
	if gen[0].Password == "" || gen[1].Password == "" || gen[0].Password == gen[1].Password {
		t.Errorf("generated passwords: %+v", gen)
	}
}

package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/bitsprov/bitssim"
	"github.com/bitsremote/bitsremote/internal/hostcheck"
	"github.com/bitsremote/bitsremote/internal/testnet"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// newBareHost is a simulated host without the BITS-Compact-Server feature.
func newBareHost(t *testing.T) *simHost {
	t.Helper()
	h, err := bitssim.NewHost(bitssim.HostConfig{
		Server: wsmantest.Config{
			Auth: wsmantest.AuthNTLM, Users: map[string]string{testUser: testPassword},
			RequireEncryption: true, Machine: "bare01",
		},
		FeatureNotInstalled: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return &simHost{Host: h}
}

const missingProblem = "the BITS provider (WMI namespace root\\microsoft\\bits) is missing: the BITS-Compact-Server feature is not installed; 'bitsremote host prepare --yes' installs it"

func TestHostCheck(t *testing.T) {
	ready, bare := newSimHost(t), newBareHost(t)
	server2022 := map[string]any{"caption": "Microsoft Windows Server 2022 Datacenter", "version": "10.0.20348", "buildNumber": "20348"}
	t.Run("ready host", func(t *testing.T) {
		r := run(t, withPassword(), "host", "check", "-H", ready.hostArg(), "-u", testUser, "-o", "json")
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		want := map[string]any{
			"host": ready.hostArg(), "ready": true, "reachable": true, "auth": true, "encryption": "message",
			"providerInstalled": true, "os": server2022, "problems": []any{},
			"feature": map[string]any{"name": "BITS-Compact-Server", "displayName": "Compact Server", "installed": true, "installState": "Installed"},
		}
		if diff := cmp.Diff(want, decode(t, r.stdout)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("feature missing", func(t *testing.T) {
		r := run(t, withPassword(), "host", "check", "-H", bare.hostArg(), "-u", testUser, "-o", "json")
		if r.code != ExitJobFailed {
			t.Fatalf("exit %d, want 1; stderr %q", r.code, r.stderr)
		}
		if want := "bitsremote: " + bare.hostArg() + " is not ready: " + missingProblem + "\n"; r.stderr != want {
			t.Errorf("stderr = %q, want %q", r.stderr, want)
		}
		got := decode(t, r.stdout)
		if got["ready"] != false || got["providerInstalled"] != false || got["auth"] != true ||
			!cmp.Equal(got["problems"], []any{missingProblem}) ||
			!cmp.Equal(got["feature"], map[string]any{"name": "BITS-Compact-Server", "displayName": "Compact Server", "installed": false, "installState": "Available"}) {
			t.Errorf("report = %v", got)
		}
	})
	t.Run("two hosts, table", func(t *testing.T) {
		r := run(t, withPassword(), "host", "check", "-H", ready.hostArg(), "-H", bare.hostArg(), "-u", testUser)
		if r.code != ExitJobFailed {
			t.Fatalf("exit %d; stderr %q", r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
		if len(lines) != 4 || !strings.HasPrefix(lines[0], "HOST ") ||
			strings.Join(strings.Fields(lines[1]), " ") != minHost(ready, bare).hostArg()+" "+rowOf(minHost(ready, bare) == ready) ||
			lines[3] != "  "+bare.hostArg()+": "+missingProblem {
			t.Errorf("table:\n%s", r.stdout)
		}
		if !strings.Contains(r.stderr, "bitsremote: 1 of 2 hosts not ready\n") {
			t.Errorf("stderr = %q", r.stderr)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		r := run(t, map[string]string{EnvPassword: "wrong"}, "host", "check", "-H", ready.hostArg(), "-u", testUser, "-o", "json", "--retries", "0")
		if r.code != ExitAuth {
			t.Fatalf("exit %d, want 3; stderr %q", r.code, r.stderr)
		}
		got := decode(t, r.stdout)
		if got["reachable"] != true || got["auth"] != false || got["providerInstalled"] != nil || got["ready"] != false {
			t.Errorf("report = %v", got)
		}
		if strings.Contains(r.stdout+r.stderr, "wrong") {
			t.Errorf("password in output: %s %s", r.stdout, r.stderr)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		addr := testnet.RefusedAddr(t)
		r := run(t, withPassword(), "host", "check", "-H", addr, "-u", testUser, "-o", "json", "--retries", "0")
		if r.code != ExitConnection {
			t.Fatalf("exit %d, want 4; stderr %q", r.code, r.stderr)
		}
		if got := decode(t, r.stdout); got["reachable"] != false {
			t.Errorf("report = %v", got)
		}
	})
}

func minHost(a, b *simHost) *simHost {
	if a.hostArg() < b.hostArg() {
		return a
	}
	return b
}

func rowOf(ready bool) string {
	if ready {
		return "yes installed Installed message Microsoft Windows Server 2022 Datacenter 10.0.20348"
	}
	return "no missing Available message Microsoft Windows Server 2022 Datacenter 10.0.20348"
}

func TestHostPrepare(t *testing.T) {
	bare := newBareHost(t)
	t.Run("without --yes it only says what it would run", func(t *testing.T) {
		r := run(t, withPassword(), "host", "prepare", "-H", bare.hostArg(), "-u", testUser)
		if r.code != ExitJobFailed {
			t.Fatalf("exit %d; stderr %q", r.code, r.stderr)
		}
		if want := bare.hostArg() + ": would run (add --yes to do it): " + hostcheck.ScriptInstall + "\n"; !strings.HasPrefix(r.stdout, want) {
			t.Errorf("stdout:\n%s\nwant it to start with %q", r.stdout, want)
		}
		if bare.ProviderInstalled() {
			t.Fatal("installed without --yes")
		}
	})
	t.Run("--yes installs, then the host is ready", func(t *testing.T) {
		r := run(t, withPassword(), "host", "prepare", "--yes", "-H", bare.hostArg(), "-u", testUser, "-o", "json")
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("exit %d; stderr %q", r.code, r.stderr)
		}
		var p struct {
			Host    string                   `json:"host"`
			Action  string                   `json:"action"`
			DryRun  bool                     `json:"dryRun"`
			Install *hostcheck.InstallResult `json:"install"`
			Before  *hostcheck.Report        `json:"before"`
			After   *hostcheck.Report        `json:"after"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
			t.Fatalf("%v\n%s", err, r.stdout)
		}
		if p.Host != bare.hostArg() || p.Action != hostcheck.ScriptInstall || p.DryRun ||
			!cmp.Equal(p.Install, &hostcheck.InstallResult{Success: true, RestartNeeded: "No", ExitCode: "Success"}) ||
			p.Before == nil || p.Before.Ready || p.After == nil || !p.After.Ready || len(p.After.Problems) != 0 {
			t.Errorf("prepare = %s", r.stdout)
		}
		if !bare.ProviderInstalled() {
			t.Fatal("not installed")
		}
		// The host now serves BITS jobs.
		if r := run(t, withPassword(), "list", "-H", bare.hostArg(), "-u", testUser, "-o", "json"); r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
			t.Errorf("list after prepare: exit %d, %q, %q", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("a ready host is left alone", func(t *testing.T) {
		r := run(t, withPassword(), "host", "prepare", "--yes", "-H", bare.hostArg(), "-u", testUser)
		if r.code != 0 || !strings.HasPrefix(r.stdout, bare.hostArg()+": ready, nothing to do\n") {
			t.Errorf("exit %d, stdout:\n%s", r.code, r.stdout)
		}
	})
}

func TestHostCheckBeforeFeatureCommandsFail(t *testing.T) {
	bare := newBareHost(t)
	// A BITS command on a host without the provider is a fault (exit 5)
	// naming the missing provider; host check is how to find out why.
	r := run(t, withPassword(), "list", "-H", bare.hostArg(), "-u", testUser)
	if r.code != ExitFault || !strings.Contains(r.stderr, "BITS provider (root\\microsoft\\bits) not available on the host") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

// sim --without-bits-feature serves hosts that host prepare can fix.
func TestSimWithoutBitsFeature(t *testing.T) {
	ios, _, _, _ := Test()
	out, errOut := &syncBuffer{}, &syncBuffer{}
	ios.Out, ios.ErrOut = out, errOut
	f := NewFactory()
	f.IO = ios
	f.Getenv = func(string) string { return "" }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- Execute(ctx, f, []string{"sim", "--listen", "127.0.0.1:0", "--without-bits-feature", "-o", "jsonl"})
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("sim exit %d", code)
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "\n") {
		if time.Now().After(deadline) {
			t.Fatalf("sim printed no host; stderr %s", errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var h simHostRecord
	if err := json.Unmarshal([]byte(strings.TrimSpace(out.String())), &h); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{EnvPassword: h.Password}
	if r := run(t, env, "host", "check", "-H", h.Host, "-u", "admin", "-o", "json"); r.code != ExitJobFailed || decode(t, r.stdout)["providerInstalled"] != false {
		t.Errorf("check: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := run(t, env, "host", "prepare", "--yes", "-H", h.Host, "-u", "admin"); r.code != 0 {
		t.Errorf("prepare: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := run(t, env, "host", "check", "-H", h.Host, "-u", "admin", "-o", "json"); r.code != 0 || decode(t, r.stdout)["ready"] != true {
		t.Errorf("check after prepare: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
}

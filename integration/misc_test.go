package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/internal/testnet"
)

// TestManyHosts: sim --hosts 2 serves two hosts on 127.0.0.1 and
// 127.0.0.2; create, list and transfer run on both (hosts from -H and
// from --inventory), and a third host that is down makes the worst exit
// code win while the others' results are still printed.
func TestManyHosts(t *testing.T) {
	t.Parallel()
	s := startSim(t, simOptions{hosts: 2})
	fs := newFileServer(t)
	h1, h2 := s.hosts[0].Host, s.hosts[1].Host
	if !strings.HasPrefix(h1, "127.0.0.1:") || !strings.HasPrefix(h2, "127.0.0.2:") {
		t.Fatalf("sim --hosts 2 serves %s and %s", h1, h2)
	}
	down := "127.0.0.1:" + strconv.Itoa(testnet.RefusedPort(t))
	inventory := filepath.Join(t.TempDir(), "hosts.txt")
	if err := os.WriteFile(inventory, []byte("# lab\n"+h2+"\n\n"+down+"  # switched off\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"BITSREMOTE_PASSWORD=" + s.password}
	multi := func(args ...string) result {
		t.Helper()
		return run(t, runSpec{args: append(args, "-H", h1, "-H", h2, "-u", "admin"), env: env, secrets: s.secrets()})
	}

	u, content := fs.addRandom("fleet.bin", 20_000)
	dir := t.TempDir()
	res := multi("create", "--url", u, "--local", filepath.Join(dir, "fleet.bin"), "--suspended", "-o", "json")
	wantCode(t, res, 0)
	var created []createJSON
	decode(t, res, &created)
	if len(created) != 2 || created[0].Host != h1 || created[1].Host != h2 || created[0].JobID == created[1].JobID {
		t.Fatalf("create on two hosts -o json: %+v", created)
	}
	res = multi("create", "--url", u, "--local", filepath.Join(dir, "x.bin"), "--suspended")
	wantCode(t, res, 0)
	if !hasLine(res.Stdout, h1+" {") || !hasLine(res.Stdout, h2+" {") {
		t.Errorf("create on two hosts (table) does not name each host:\n%s", res.Stdout)
	}

	res = multi("list", "-o", "jsonl")
	wantCode(t, res, 0)
	perHost := map[string]int{}
	for _, j := range decodeLines[jobJSON](t, res) {
		perHost[j.Host]++
	}
	if diff := cmp.Diff(map[string]int{h1: 2, h2: 2}, perHost); diff != "" {
		t.Errorf("list on two hosts: jobs per host (-want +got):\n%s", diff)
	}

	// One host down: exit 4, the live host's jobs and a failure record.
	res = run(t, runSpec{args: []string{"list", "--inventory", inventory, "-u", "admin", "--retries", "0", "-o", "json"}, env: env, secrets: s.secrets()})
	wantCode(t, res, 4)
	var rows []rowJSON
	decode(t, res, &rows)
	var live, failed int
	for _, r := range rows {
		switch {
		case r.Host == h2 && r.JobID != "":
			live++
		case r.Host == down && r.ExitCode == 4 && strings.Contains(r.Failure, "connection refused"):
			failed++
		default:
			t.Errorf("unexpected record %+v", r)
		}
	}
	if live != 2 || failed != 1 {
		t.Errorf("list with a host down: %d jobs from %s, %d failure records for %s; want 2 and 1\n%s", live, h2, failed, down, res)
	}
	if !strings.Contains(res.Stderr, down) || !strings.Contains(res.Stderr, "1 of 2 hosts failed") {
		t.Errorf("stderr does not name the failed host:\n%s", res.Stderr)
	}

	// An unknown job on one host, known on the other: 5 wins over 0.
	res = run(t, runSpec{args: []string{"get", created[0].JobID, "-H", h1, "-H", h2, "-u", "admin", "-o", "json"}, env: env, secrets: s.secrets()})
	wantCode(t, res, 5)
	decode(t, res, &rows)
	if len(rows) != 2 || rows[0].Host != h1 || rows[0].JobID != created[0].JobID || rows[1].Host != h2 || rows[1].ExitCode != 5 {
		t.Errorf("get on two hosts, known on one: %+v", rows)
	}

	// transfer on both hosts: one job per host, each file complete.
	dests := []string{filepath.Join(t.TempDir(), "h.bin")}
	res = run(t, runSpec{args: []string{"transfer", u, dests[0], "--interval", "50ms", "-H", h1, "-u", "admin", "-o", "json"}, env: env, secrets: s.secrets()})
	wantCode(t, res, 0)
	sameBytes(t, "fleet transfer", readFile(t, dests[0]), content)
}

// TestDemo runs the README's first command: it must finish (the run is
// bounded at 30 s), and the file it reports must exist with the content
// whose SHA-256 it prints.
func TestDemo(t *testing.T) {
	t.Parallel()
	t.Run("json", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		res := run(t, runSpec{args: []string{"demo", "--dir", dir, "-o", "json"}})
		wantCode(t, res, 0)
		var got struct {
			Host              string  `json:"host"`
			JobID             string  `json:"jobId"`
			Source            string  `json:"source"`
			Destination       string  `json:"destination"`
			Bytes             int64   `json:"bytes"`
			SHA256Source      string  `json:"sha256Source"`
			SHA256Destination string  `json:"sha256Destination"`
			Match             bool    `json:"match"`
			Job               jobJSON `json:"job"`
			Steps             []struct {
				Step   string `json:"step"`
				Detail string `json:"detail"`
			} `json:"steps"`
			ElapsedSeconds float64 `json:"elapsedSeconds"`
			Outcome        struct {
				Result string `json:"result"`
				Polls  int    `json:"polls"`
			} `json:"outcome"`
		}
		decode(t, res, &got)
		b := readFile(t, got.Destination)
		sum := sha256.Sum256(b)
		if !strings.HasPrefix(got.Destination, dir) || int64(len(b)) != got.Bytes || got.Bytes != 8<<20 ||
			hex.EncodeToString(sum[:]) != got.SHA256Source || got.SHA256Source != got.SHA256Destination || !got.Match {
			t.Errorf("demo: destination %s (%d bytes, sha256 %x); reported %d bytes, source %s, destination %s, match %v",
				got.Destination, len(b), sum, got.Bytes, got.SHA256Source, got.SHA256Destination, got.Match)
		}
		if got.Job.JobID != got.JobID || got.Job.State != "Acknowledged" || got.Job.Priority != "Foreground" || got.Outcome.Result != "Completed" ||
			len(got.Job.Files) != 1 || got.Job.Files[0].LocalFile != got.Destination || !got.Job.Files[0].Completed {
			t.Errorf("demo job: %+v, outcome %+v", got.Job, got.Outcome)
		}
		var steps []string
		for _, s := range got.Steps {
			steps = append(steps, s.Step)
		}
		if diff := cmp.Diff([]string{"identify", "create", "priority", "resume", "wait", "complete"}, steps); diff != "" {
			t.Errorf("demo steps (-want +got):\n%s", diff)
		}
	})
	t.Run("table", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		res := run(t, runSpec{args: []string{"demo", "--dir", dir, "--size", "300KiB"}})
		wantCode(t, res, 0)
		if !strings.Contains(res.Stdout, "The file arrived intact") {
			t.Errorf("demo (table) does not say the file arrived:\n%s", res)
		}
		var sums []string
		for _, line := range strings.Split(res.Stdout, "\n") {
			if f := strings.Fields(line); len(f) == 3 && f[0] == "sha256" {
				sums = append(sums, f[2])
			}
		}
		path := filepath.Join(dir, "host", "payload.bin")
		sum := sha256.Sum256(readFile(t, path))
		if len(sums) != 2 || sums[0] != sums[1] || sums[0] != hex.EncodeToString(sum[:]) {
			t.Errorf("demo printed sha256 %q; %s has %x", sums, path, sum)
		}
	})
	t.Run("go run", func(t *testing.T) {
		// The README's very words, from the repository root.
		t.Parallel()
		dir := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "run", "./cmd/bitsremote", "demo", "--dir", dir, "--size", "1MiB", "-o", "json")
		cmd.Dir = ".."
		cmd.Env = baseEnv()
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go run ./cmd/bitsremote demo: %v\n%s", err, out)
		}
		var got struct {
			Destination  string `json:"destination"`
			SHA256Source string `json:"sha256Source"`
			Match        bool   `json:"match"`
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("go run ./cmd/bitsremote demo -o json: %v\n%s", err, out)
		}
		sum := sha256.Sum256(readFile(t, got.Destination))
		if !got.Match || hex.EncodeToString(sum[:]) != got.SHA256Source || !strings.HasPrefix(got.Destination, dir) {
			t.Errorf("go run demo: %+v; the file's sha256 is %x", got, sum)
		}
	})
	t.Run("bad size", func(t *testing.T) {
		t.Parallel()
		res := run(t, runSpec{args: []string{"demo", "--size", "lots", "--dir", t.TempDir()}})
		wantCode(t, res, 2)
		if !strings.Contains(res.Stderr, "lots") {
			t.Errorf("demo --size lots: stderr does not name the value:\n%s", res.Stderr)
		}
	})
}

// TestCompletion: each shell's script names the program and its
// commands; an unknown shell is a usage error.
func TestCompletion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ shell, marker string }{
		{"bash", "complete -o default -F __start_bitsremote bitsremote"},
		{"zsh", "#compdef bitsremote"},
		{"fish", "complete -c bitsremote"},
	} {
		res := run(t, runSpec{args: []string{"completion", tc.shell}})
		wantCode(t, res, 0)
		if !strings.Contains(res.Stdout, tc.marker) {
			t.Errorf("completion %s lacks %q", tc.shell, tc.marker)
		}
		if res.Stderr != "" {
			t.Errorf("completion %s wrote on stderr: %s", tc.shell, res.Stderr)
		}
	}
	res := run(t, runSpec{args: []string{"completion", "tcsh"}})
	wantCode(t, res, 2)
	if !strings.Contains(res.Stderr, "tcsh") {
		t.Errorf("completion tcsh: stderr does not name the shell:\n%s", res.Stderr)
	}
	res = run(t, runSpec{args: []string{"__complete", "priority", "{0BADC0DE-0000-4000-8000-000000000001}", ""}})
	wantCode(t, res, 0)
	for _, level := range []string{"foreground", "high", "normal", "low"} {
		if !hasLine(res.Stdout, level) {
			t.Errorf("completion of priority LEVEL lacks %s:\n%s", level, res.Stdout)
		}
	}
}

// TestBasicOverHTTPS runs a whole transfer over the WinRM HTTPS listener
// with Basic authentication, trusting sim's CA with --ca-file.
func TestBasicOverHTTPS(t *testing.T) {
	t.Parallel()
	s := startSim(t, simOptions{auth: "basic", https: true})
	if !strings.HasPrefix(s.host().URL, "https://") || s.host().CAFile == "" {
		t.Fatalf("sim --https: url %s, caFile %q", s.host().URL, s.host().CAFile)
	}
	fs := newFileServer(t)
	u, content := fs.addRandom("tls.bin", 99_999)
	local := filepath.Join(t.TempDir(), "tls.bin")
	res := s.run(t, "transfer", u, local, "--interval", "50ms", "-o", "json")
	wantCode(t, res, 0)
	var j jobJSON
	decode(t, res, &j)
	if j.Host != s.host().Host || j.State != "Acknowledged" || j.Outcome == nil || j.Outcome.Result != "Completed" {
		t.Errorf("transfer over https: host %s state %s outcome %+v", j.Host, j.State, j.Outcome)
	}
	sameBytes(t, "tls.bin", readFile(t, local), content)
	// The https:// URL form of -H works as well as --https.
	res = run(t, runSpec{
		args:    []string{"list", "-H", s.host().URL, "-u", "admin", "--auth", "basic", "--ca-file", s.host().CAFile, "-o", "json"},
		env:     []string{"BITSREMOTE_PASSWORD=" + s.password},
		secrets: s.secrets(),
	})
	wantCode(t, res, 0)
	// Skipping verification works and warns.
	res = run(t, runSpec{
		args:    []string{"list", "-H", s.host().Host, "--https", "-u", "admin", "--auth", "basic", "--insecure-skip-verify"},
		env:     []string{"BITSREMOTE_PASSWORD=" + s.password},
		secrets: s.secrets(),
	})
	wantCode(t, res, 0)
	if !strings.Contains(res.Stderr, "--insecure-skip-verify") {
		t.Errorf("--insecure-skip-verify did not warn:\n%s", res.Stderr)
	}
}

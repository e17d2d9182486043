package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestDemo(t *testing.T) {
	dir := t.TempDir()
	r := run(t, nil, "demo", "--dir", dir, "--size", "256KiB", "-o", "json")
	if r.code != 0 {
		t.Fatalf("demo: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	var rec struct {
		JobID             string `json:"jobId"`
		Destination       string `json:"destination"`
		Bytes             int64  `json:"bytes"`
		SHA256Source      string `json:"sha256Source"`
		SHA256Destination string `json:"sha256Destination"`
		Match             bool   `json:"match"`
		Steps             []struct {
			Step string `json:"step"`
		} `json:"steps"`
		Job map[string]any `json:"job"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rec); err != nil {
		t.Fatalf("demo -o json: %v\n%s", err, r.stdout)
	}
	if !guidRE.MatchString(rec.JobID) || rec.Bytes != 256<<10 || !rec.Match || rec.SHA256Source != rec.SHA256Destination {
		t.Errorf("demo record: %+v", rec)
	}
	var steps []string
	for _, s := range rec.Steps {
		steps = append(steps, s.Step)
	}
	if got, want := strings.Join(steps, ","), "identify,create,priority,resume,wait,complete"; got != want {
		t.Errorf("steps = %s, want %s", got, want)
	}
	if rec.Destination != filepath.Join(dir, "host", "payload.bin") {
		t.Errorf("destination = %s", rec.Destination)
	}
	b, err := os.ReadFile(rec.Destination)
	if err != nil || int64(len(b)) != rec.Bytes || sha(b) != rec.SHA256Destination {
		t.Errorf("the downloaded file does not match the record (err %v)", err)
	}
	if rec.Job["state"] != "Acknowledged" || rec.Job["priority"] != "Foreground" {
		t.Errorf("job = %v", rec.Job)
	}
}

func TestDemoTable(t *testing.T) {
	r := run(t, nil, "demo", "--dir", t.TempDir(), "--size", "1KiB")
	if r.code != 0 {
		t.Fatalf("demo: exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"Simulated Windows host at http://127.0.0.1:", "  create     {", "Downloaded to ", "The file arrived intact"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
		}
	}
	if r.stderr != "" {
		t.Errorf("stderr is not a terminal, yet demo wrote to it: %q", r.stderr)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestSim(t *testing.T) {
	hosts := startSimIn(t, nil)
	if !strings.HasPrefix(hosts[0].Host, "127.0.0.1:") || !strings.HasPrefix(hosts[1].Host, "127.0.0.2:") ||
		hosts[0].Password == "" || hosts[0].Password != hosts[1].Password || hosts[0].User != "admin" || hosts[1].Machine != "SIM02" {
		t.Errorf("sim hosts = %+v", hosts)
	}
	env := map[string]string{EnvPassword: hosts[0].Password}
	r := run(t, env, "list", "-H", hosts[0].Host, "-H", hosts[1].Host, "-u", "admin", "-o", "json")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("list on two sim hosts: exit %d stdout %q stderr %s", r.code, r.stdout, r.stderr)
	}
}

func TestSimAddrs(t *testing.T) {
	got, err := simAddrs("127.0.0.254:5985", 3)
	if err != nil || strings.Join(got, " ") != "127.0.0.254:5985 127.0.0.255:5985 127.0.1.0:5985" {
		t.Errorf("simAddrs = %v, %v", got, err)
	}
	for _, bad := range []struct {
		listen string
		n      int
		err    string
	}{
		{"10.0.0.1:5985", 2, "needs --listen on a 127.x.y.z address"},
		{"127.0.0.1", 1, "want host:port"},
		{"127.0.0.1:5985", 0, "want 1 to 4096"},
		{"127.0.0.1:5985", 4097, "want 1 to 4096"},
	} {
		if _, err := simAddrs(bad.listen, bad.n); err == nil || !strings.Contains(err.Error(), bad.err) {
			t.Errorf("simAddrs(%q, %d) error %v, want %q", bad.listen, bad.n, err, bad.err)
		}
	}
}

package integration

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestWaitRunAfterAsyncTransfer: "transfer --async" on the two hosts of
// "sim --hosts 2" returns at once and leaves its run unfinished in the
// ledger; "wait --run" with that run's id (and no -H: the hosts come from
// the ledger) waits for both jobs, completes them and prints one job
// record per host; the ledger then has both acknowledged and the run
// finished, and a second "wait --run" reports them without polling.
func TestWaitRunAfterAsyncTransfer(t *testing.T) {
	t.Parallel()
	s := startSim(t, simOptions{hosts: 2})
	fs := newFileServer(t)
	u, content := fs.addRandom("run.bin", 40_000)
	h1, h2 := s.hosts[0].Host, s.hosts[1].Host
	dest := filepath.Join(t.TempDir(), "run.bin")
	env := []string{"BITSREMOTE_PASSWORD=" + s.password, "BITSREMOTE_LEDGER=" + filepath.Join(t.TempDir(), "ledger.db")}
	bitsremote := func(args ...string) result {
		t.Helper()
		return run(t, runSpec{args: args, env: env, secrets: s.secrets()})
	}

	res := bitsremote("transfer", u, dest, "--async", "-H", h1, "-H", h2, "-u", "admin", "-o", "jsonl")
	wantCode(t, res, 0)
	created := map[string]string{}
	for _, j := range decodeLines[jobJSON](t, res) {
		if j.Outcome == nil || j.Outcome.Result != "Async" {
			t.Errorf("transfer --async record %+v", j)
		}
		created[j.Host] = j.JobID
	}
	if len(created) != 2 || created[h1] == "" || created[h2] == "" {
		t.Fatalf("transfer --async on two hosts: %v", created)
	}

	type runJSON struct {
		ID       string  `json:"id"`
		Command  string  `json:"command"`
		Created  string  `json:"created"`
		Updated  string  `json:"updated"`
		Finished *string `json:"finished"`
		Resumes  int     `json:"resumes"`
		Hosts    int     `json:"hosts"`
		Jobs     int     `json:"jobs"`
		Done     int     `json:"acknowledged"`
		Failed   int     `json:"failed"`
		Open     int     `json:"open"`
	}
	var runs []runJSON
	decode(t, bitsremote("ledger", "list", "-o", "json"), &runs)
	if len(runs) != 1 || runs[0].Command != "transfer" || runs[0].Open != 2 || runs[0].Finished != nil {
		t.Fatalf("ledger after transfer --async: %+v", runs)
	}
	id := runs[0].ID

	res = bitsremote("wait", "--run", id, "--complete", "--interval", "50ms", "--timeout", "60s", "-u", "admin", "-o", "jsonl")
	wantCode(t, res, 0)
	jobs := decodeLines[jobJSON](t, res)
	if len(jobs) != 2 {
		t.Fatalf("wait --run printed %d records, want 2\n%s", len(jobs), res)
	}
	n := uint64(len(content))
	for _, j := range jobs {
		if j.JobID != created[j.Host] || j.State != "Acknowledged" || j.StateCode != 7 || j.FilesTotal != 1 || j.FilesTransferred != 1 ||
			j.BytesTotal == nil || *j.BytesTotal != n || j.BytesTransferred != n || j.DisplayName != "BITS Transfer" || j.Error != nil ||
			j.Outcome == nil || j.Outcome.Result != "Completed" || j.Outcome.Detail != "job transferred and completed" {
			t.Errorf("wait --run record %+v (outcome %+v)", j, j.Outcome)
		}
	}
	if !strings.HasSuffix(res.Stderr, "summary: run "+id+": 2 jobs on 2 hosts: 2 ok, 0 failed; the run is finished\n") {
		t.Errorf("stderr:\n%s", res.Stderr)
	}
	sameBytes(t, "the transferred file", readFile(t, dest), content)

	type entryJSON struct {
		Host  string `json:"host"`
		JobID string `json:"jobId"`
		Step  string `json:"step"`
		State string `json:"state"`
	}
	steps := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(bitsremote("ledger", "list", "--jobs", "--run", id, "-o", "jsonl").Stdout), "\n") {
		var e entryJSON
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("ledger line %q: %v", line, err)
		}
		steps[e.Host] = e.Step + " " + e.State + " " + e.JobID
	}
	want := map[string]string{h1: "acknowledged Acknowledged " + created[h1], h2: "acknowledged Acknowledged " + created[h2]}
	if diff := cmp.Diff(want, steps); diff != "" {
		t.Errorf("ledger jobs (-want +got):\n%s", diff)
	}
	decode(t, bitsremote("ledger", "list", "--run", id, "-o", "json"), &runs)
	if len(runs) != 1 || runs[0].Finished == nil || runs[0].Done != 2 {
		t.Errorf("run after wait --run: %+v", runs)
	}

	// Again: the jobs as recorded, nothing polled, exit 0.
	res = bitsremote("wait", "--run", id, "--complete", "-u", "admin", "-o", "jsonl")
	wantCode(t, res, 0)
	for _, j := range decodeLines[jobJSON](t, res) {
		if j.JobID != created[j.Host] || j.State != "Acknowledged" || j.Outcome == nil || j.Outcome.Result != "AlreadyDone" || j.Outcome.Polls != 0 {
			t.Errorf("second wait --run record %+v", j)
		}
	}
}

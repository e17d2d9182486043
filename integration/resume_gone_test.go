package integration

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestTransferResumeJobGone: a job of an --async run cancelled on its
// host by someone else is recorded gone by "transfer --resume", which
// exits 1 with the job's record saying so; the other host's job
// completes.
func TestTransferResumeJobGone(t *testing.T) {
	t.Parallel()
	s := startSim(t, simOptions{hosts: 2})
	fs := newFileServer(t)
	u, _ := fs.addRandom("gone.bin", 30_000)
	h1, h2 := s.hosts[0].Host, s.hosts[1].Host
	bitsremote := s.withLedger(t, filepath.Join(t.TempDir(), "ledger.db"))
	args := []string{"transfer", u, filepath.Join(t.TempDir(), "gone.bin"), "-H", h1, "-H", h2, "-u", "admin", "-o", "jsonl", "--interval", "50ms", "--timeout", "60s"}
	res := bitsremote(append(args, "--async")...)
	wantCode(t, res, 0)
	created := map[string]jobJSON{}
	for _, j := range decodeLines[jobJSON](t, res) {
		created[j.Host] = j
	}
	wantCode(t, bitsremote("cancel", created[h1].JobID, "-H", h1, "-u", "admin"), 0)

	res = bitsremote(append(args, "--resume")...)
	wantCode(t, res, 1)
	var gone, done []jobJSON
	for _, line := range strings.Split(strings.TrimSpace(res.Stdout), "\n") {
		var j jobJSON
		if err := json.Unmarshal([]byte(line), &j); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		switch {
		case j.Host == h1 && j.JobID != "":
			gone = append(gone, j)
		case j.Host == h2:
			done = append(done, j)
		}
	}
	reason := "job is no longer on the host (completed or cancelled elsewhere); last recorded state " + created[h1].State
	if len(gone) != 1 || gone[0].JobID != created[h1].JobID || gone[0].State != created[h1].State || gone[0].Outcome == nil ||
		gone[0].Outcome.Result != "Gone" || gone[0].Outcome.Detail != reason {
		t.Errorf("%s: records %+v", h1, gone)
	}
	if len(done) != 1 || done[0].State != "Acknowledged" || done[0].Outcome == nil || done[0].Outcome.Result != "Completed" {
		t.Errorf("%s: records %+v", h2, done)
	}
	if want := "bitsremote: " + h1 + ": job " + created[h1].JobID + ": " + reason + "\n"; !strings.Contains(res.Stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, res.Stderr)
	}
}

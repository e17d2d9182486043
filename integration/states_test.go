package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestJobInError: a download of a missing file ends in Error; wait
// leaves it (exit 1), error/get/list report the 404 field by field, and
// wait --on-error cancel cancels it (exit 1) so it leaves the queue.
func TestJobInError(t *testing.T) {
	t.Parallel()
	s := startSim(t, simOptions{})
	fs := newFileServer(t)
	missing := fs.URL + "/no-such-file.bin"
	local := filepath.Join(t.TempDir(), "missing.bin")
	host := s.host().Host

	res := s.run(t, "create", "--url", missing, "--local", local)
	wantCode(t, res, 0)
	id := strings.TrimSpace(res.Stdout)
	if !guidRE.MatchString(id) {
		t.Fatalf("create printed %q, want a bare {GUID} line", res.Stdout)
	}
	want404 := &errorJSON{
		Context:            "RemoteFile",
		ContextDescription: "The error occurred while the remote file was being processed.",
		Code:               "0x80190194",
		CodeName:           "BG_E_HTTP_ERROR_404",
		Description:        "HTTP status 404: The requested URL does not exist on the server.",
	}

	res = s.run(t, "wait", id, "--interval", "50ms", "--timeout", "20s", "-o", "json")
	wantCode(t, res, 1)
	var j jobJSON
	decode(t, res, &j)
	if j.State != "Error" || j.StateCode != 4 || j.Outcome == nil || j.Outcome.Result != "Left" {
		t.Errorf("wait on a 404: state %s (%d), outcome %+v; want Error (4), Left", j.State, j.StateCode, j.Outcome)
	}
	if diff := cmp.Diff(want404, j.Error); diff != "" {
		t.Errorf("wait: error object (-want +got):\n%s", diff)
	}
	if !strings.Contains(res.Stderr, id) || !strings.Contains(res.Stderr, "BG_E_HTTP_ERROR_404") {
		t.Errorf("wait: stderr does not name the job and BG_E_HTTP_ERROR_404:\n%s", res.Stderr)
	}

	res = s.run(t, "error", id, "-o", "json")
	wantCode(t, res, 0)
	var e errorCmdJSON
	decode(t, res, &e)
	if diff := cmp.Diff(errorCmdJSON{Host: host, JobID: id, Error: want404}, e); diff != "" {
		t.Errorf("error -o json (-want +got):\n%s", diff)
	}
	res = s.run(t, "error", id)
	wantCode(t, res, 0)
	if !hasLine(res.Stdout, id, "0x80190194", "BG_E_HTTP_ERROR_404", "RemoteFile") {
		t.Errorf("error: table line lacks the code and context:\n%s", res.Stdout)
	}

	res = s.run(t, "get", id, "-o", "json")
	wantCode(t, res, 0)
	decode(t, res, &j)
	if diff := cmp.Diff(want404, j.Error); diff != "" {
		t.Errorf("get: error object (-want +got):\n%s", diff)
	}

	// A second job that is fine, so that --state really filters.
	urlOK, _ := fs.addRandom("ok.bin", 1000)
	res = s.run(t, "create", "--url", urlOK, "--local", filepath.Join(t.TempDir(), "ok.bin"), "--suspended")
	wantCode(t, res, 0)
	okID := strings.TrimSpace(res.Stdout)
	for _, tc := range []struct {
		states string
		want   []string
	}{
		{"error", []string{id}},
		{"Suspended", []string{okID}},
		{"error,suspended", jobIDs([]jobJSON{{JobID: id}, {JobID: okID}})},
		{"transferred", nil},
	} {
		res := s.run(t, "list", "--state", tc.states, "-o", "json")
		wantCode(t, res, 0)
		var list []jobJSON
		decode(t, res, &list)
		if diff := cmp.Diff(tc.want, jobIDs(list)); diff != "" {
			t.Errorf("list --state %s (-want +got):\n%s", tc.states, diff)
		}
		for _, lj := range list {
			if lj.JobID == id {
				if diff := cmp.Diff(want404, lj.Error); diff != "" {
					t.Errorf("list: error object (-want +got):\n%s", diff)
				}
			}
		}
	}
	res = s.run(t, "list", "--state", "finished")
	wantCode(t, res, 2)
	if !strings.Contains(res.Stderr, "--state") || !strings.Contains(res.Stderr, "finished") {
		t.Errorf("list --state finished: stderr does not name the bad state:\n%s", res.Stderr)
	}

	// A job that is not in error has no error information: a fault.
	res = s.run(t, "error", okID)
	wantCode(t, res, 5)
	if !strings.Contains(res.Stderr, "BG_E_ERROR_INFORMATION_UNAVAILABLE") {
		t.Errorf("error of a healthy job: stderr lacks BG_E_ERROR_INFORMATION_UNAVAILABLE:\n%s", res.Stderr)
	}

	// wait --on-error cancel: exit 1, the job is Cancelled and gone.
	res = s.run(t, "wait", id, "--on-error", "cancel", "--interval", "50ms", "-o", "json")
	wantCode(t, res, 1)
	decode(t, res, &j)
	if j.State != "Cancelled" || j.StateCode != 8 || j.Outcome == nil || j.Outcome.Result != "Cancelled" {
		t.Errorf("wait --on-error cancel: state %s (%d), outcome %+v; want Cancelled (8), Cancelled", j.State, j.StateCode, j.Outcome)
	}
	if diff := cmp.Diff(want404, j.Error); diff != "" {
		t.Errorf("wait --on-error cancel: error object (-want +got):\n%s", diff)
	}
	res = s.run(t, "get", id)
	wantCode(t, res, 5)
	if _, err := os.Stat(local); !os.IsNotExist(err) {
		t.Errorf("the cancelled job's file exists: %v", err)
	}
}

// TestSuspendResumeCancelComplete drives SetJobState through the CLI:
// suspend keeps a running job's progress, resume continues it, cancel
// removes the job and its files, complete makes a Transferred job's file
// appear, and complete of a job with a failed file reports
// BG_S_PARTIAL_COMPLETE with exit 0.
func TestSuspendResumeCancelComplete(t *testing.T) {
	t.Parallel()
	s := startSim(t, simOptions{})
	fs := newFileServer(t)
	dir := t.TempDir()
	host := s.host().Host

	action := func(t *testing.T, verb, id string) actionJSON {
		t.Helper()
		res := s.run(t, verb, id, "-o", "json")
		wantCode(t, res, 0)
		var a actionJSON
		decode(t, res, &a)
		if a.Host != host || a.JobID != id {
			t.Errorf("%s -o json: host %q jobId %q, want %q %q", verb, a.Host, a.JobID, host, id)
		}
		return a
	}
	getJob := func(t *testing.T, id string) jobJSON {
		t.Helper()
		res := s.run(t, "get", id, "-o", "json")
		wantCode(t, res, 0)
		var j jobJSON
		decode(t, res, &j)
		return j
	}

	t.Run("suspend resume cancel", func(t *testing.T) {
		url, _ := fs.addRandom("slow.bin", 200_000)
		fs.stall("slow.bin", 50_000)
		local := filepath.Join(dir, "slow.bin")
		res := s.run(t, "create", "--url", url, "--local", local, "-o", "json")
		wantCode(t, res, 0)
		var c createJSON
		decode(t, res, &c)
		if c.Suspended {
			t.Errorf("create without --suspended printed suspended: true")
		}
		id := c.JobID
		if a := action(t, "suspend", id); a.Action != "suspended" {
			t.Errorf("suspend: action %q", a.Action)
		}
		if j := getJob(t, id); j.State != "Suspended" || j.StateCode != 3 {
			t.Errorf("after suspend: state %s (%d)", j.State, j.StateCode)
		}
		if a := action(t, "resume", id); a.Action != "resumed" {
			t.Errorf("resume: action %q", a.Action)
		}
		if j := getJob(t, id); j.State == "Suspended" {
			t.Errorf("after resume: still Suspended")
		}
		if a := action(t, "cancel", id); a.Action != "cancelled" || a.ReturnCode != "" {
			t.Errorf("cancel: %+v", a)
		}
		res = s.run(t, "get", id)
		wantCode(t, res, 5)
		if _, err := os.Stat(local); !os.IsNotExist(err) {
			t.Errorf("cancelled job's file: %v, want none", err)
		}
		// Cancelling again: the job is gone, a fault.
		res = s.run(t, "cancel", id)
		wantCode(t, res, 5)
	})

	t.Run("complete", func(t *testing.T) {
		url, content := fs.addRandom("done.bin", 123_457)
		local := filepath.Join(dir, "done.bin")
		res := s.run(t, "create", "--url", url, "--local", local, "--priority", "foreground")
		wantCode(t, res, 0)
		id := strings.TrimSpace(res.Stdout)
		res = s.run(t, "wait", id, "--interval", "50ms", "-o", "json")
		wantCode(t, res, 0)
		var j jobJSON
		decode(t, res, &j)
		if j.State != "Transferred" || j.StateCode != 6 || j.Priority != "Foreground" || j.Outcome == nil || j.Outcome.Result != "Left" {
			t.Errorf("wait without --complete: state %s (%d), priority %s, outcome %+v", j.State, j.StateCode, j.Priority, j.Outcome)
		}
		if j.BytesTotal == nil || *j.BytesTotal != uint64(len(content)) || j.BytesTransferred != uint64(len(content)) {
			t.Errorf("wait: bytes %d of %v, want %d of %d", j.BytesTransferred, j.BytesTotal, len(content), len(content))
		}
		// BITS writes to a temporary file until Complete.
		if _, err := os.Stat(local); !os.IsNotExist(err) {
			t.Errorf("before complete the destination exists (%v); BITS keeps it in a temporary file", err)
		}
		if a := action(t, "complete", id); a.Action != "completed" || a.ReturnCode != "" {
			t.Errorf("complete: %+v", a)
		}
		sameBytes(t, "done.bin", readFile(t, local), content)
	})

	t.Run("partial complete", func(t *testing.T) {
		url, content := fs.addRandom("half.bin", 4096)
		local := filepath.Join(dir, "half.bin")
		lost := filepath.Join(dir, "lost.bin")
		res := s.run(t, "create", "--url", url, "--local", local, "--suspended")
		wantCode(t, res, 0)
		id := strings.TrimSpace(res.Stdout)
		wantCode(t, s.run(t, "add-file", id, fs.URL+"/lost.bin", lost), 0)
		action(t, "resume", id)
		res = s.run(t, "wait", id, "--interval", "50ms", "-o", "json")
		wantCode(t, res, 1)
		a := action(t, "complete", id)
		if a.Action != "completed" || a.ReturnCode != "0x00200017" || a.ReturnCodeName != "BG_S_PARTIAL_COMPLETE" {
			t.Errorf("complete with a failed file: %+v; want returnCode 0x00200017 BG_S_PARTIAL_COMPLETE", a)
		}
		sameBytes(t, "half.bin", readFile(t, local), content)
		if _, err := os.Stat(lost); !os.IsNotExist(err) {
			t.Errorf("the failed file exists after a partial complete: %v", err)
		}
	})
}

// TestWaitPolicies: --transient cancel cancels a job in TransientError
// (a 503) on its own (exit 1); the default rides it out and the job
// completes once the server recovers; --timeout on a suspended job is
// exit 4 with a warning, and the job is left suspended.
func TestWaitPolicies(t *testing.T) {
	t.Parallel()
	s := startSim(t, simOptions{extra: []string{"--time-scale", "0.001"}})
	fs := newFileServer(t)
	dir := t.TempDir()

	t.Run("transient cancel", func(t *testing.T) {
		t.Parallel()
		u, _ := fs.addRandom("busy-cancel.bin", 1000)
		fs.fail("busy-cancel.bin", 503)
		res := s.run(t, "create", "--url", u, "--local", filepath.Join(dir, "busy-cancel.bin"))
		wantCode(t, res, 0)
		id := strings.TrimSpace(res.Stdout)
		// --transient cancel cancels a job in TransientError, as the
		// PowerShell loop does, whatever --on-error says (it is about
		// jobs in Error).
		res = s.run(t, "wait", id, "--transient", "cancel", "--interval", "50ms", "-o", "json")
		wantCode(t, res, 1)
		var j jobJSON
		decode(t, res, &j)
		if j.State != "Cancelled" || j.Outcome == nil || j.Outcome.Result != "Cancelled" || j.Error == nil ||
			j.Error.CodeName != "BG_E_HTTP_ERROR_503" || j.TransientErrorCount < 1 {
			t.Errorf("wait --transient cancel on a 503: state %s, outcome %+v, error %+v, transient errors %d", j.State, j.Outcome, j.Error, j.TransientErrorCount)
		}
		wantCode(t, s.run(t, "get", id), 5)
	})

	t.Run("transient wait rides it out", func(t *testing.T) {
		t.Parallel()
		u, content := fs.addRandom("busy-wait.bin", 2000)
		fs.fail("busy-wait.bin", 503)
		local := filepath.Join(dir, "busy-wait.bin")
		res := s.run(t, "create", "--url", u, "--local", local)
		wantCode(t, res, 0)
		id := strings.TrimSpace(res.Stdout)
		deadline := time.Now().Add(10 * time.Second)
		for {
			if time.Now().After(deadline) {
				t.Fatalf("job %s never reached TransientError:\n%s", id, res)
			}
			res = s.run(t, "get", id, "-o", "json")
			wantCode(t, res, 0)
			var j jobJSON
			decode(t, res, &j)
			if j.State == "TransientError" {
				if j.Error == nil || j.Error.CodeName != "BG_E_HTTP_ERROR_503" {
					t.Errorf("get of a job in TransientError: error %+v", j.Error)
				}
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		fs.fail("busy-wait.bin", 0)
		res = s.run(t, "wait", id, "--complete", "--interval", "50ms", "--timeout", "20s", "-o", "json")
		wantCode(t, res, 0)
		sameBytes(t, "busy-wait.bin", readFile(t, local), content)
	})

	t.Run("timeout on a suspended job", func(t *testing.T) {
		t.Parallel()
		u, _ := fs.addRandom("parked.bin", 100)
		res := s.run(t, "create", "--url", u, "--local", filepath.Join(dir, "parked.bin"), "--suspended")
		wantCode(t, res, 0)
		id := strings.TrimSpace(res.Stdout)
		res = s.run(t, "wait", id, "--interval", "50ms", "--timeout", "1s", "-o", "json")
		wantCode(t, res, 4)
		var j jobJSON
		decode(t, res, &j)
		if j.State != "Suspended" || j.Outcome == nil || j.Outcome.Result != "TimedOut" {
			t.Errorf("wait --timeout on a suspended job: state %s outcome %+v", j.State, j.Outcome)
		}
		if !strings.Contains(res.Stderr, "suspended") || !strings.Contains(res.Stderr, id) {
			t.Errorf("wait on a suspended job does not warn:\n%s", res.Stderr)
		}
		wantCode(t, s.run(t, "get", id), 0)
	})
}

// TestUploadJobRules: an upload job holds exactly one file
// (BG_E_TOO_MANY_FILES) and cannot be completed before it is Transferred
// (BG_E_INVALID_STATE); both are the host's answers, exit 5.
func TestUploadJobRules(t *testing.T) {
	t.Parallel()
	s := startSim(t, simOptions{uploadDir: t.TempDir()})
	src := filepath.Join(t.TempDir(), "up.bin")
	if err := os.WriteFile(src, []byte("one file only"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := s.run(t, "create", "--type", "upload", "--url", s.host().UploadURL+"/up.bin", "--local", src, "--suspended")
	wantCode(t, res, 0)
	id := strings.TrimSpace(res.Stdout)
	res = s.run(t, "add-file", id, s.host().UploadURL+"/second.bin", src)
	wantCode(t, res, 5)
	if !strings.Contains(res.Stderr, "BG_E_TOO_MANY_FILES") {
		t.Errorf("add-file to an upload job: stderr lacks BG_E_TOO_MANY_FILES:\n%s", res.Stderr)
	}
	res = s.run(t, "complete", id)
	wantCode(t, res, 5)
	if !strings.Contains(res.Stderr, "BG_E_INVALID_STATE") {
		t.Errorf("complete of a suspended upload: stderr lacks BG_E_INVALID_STATE:\n%s", res.Stderr)
	}
	res = s.run(t, "get", id, "-o", "json")
	wantCode(t, res, 0)
	var j jobJSON
	decode(t, res, &j)
	if j.FilesTotal != 1 || j.State != "Suspended" {
		t.Errorf("the upload job after the refusals: %d files, %s", j.FilesTotal, j.State)
	}
}

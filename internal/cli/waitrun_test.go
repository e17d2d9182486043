package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/internal/fleet"
	"github.com/bitsremote/bitsremote/wsman"
)

// runFixture is a ledger run created by "transfer --async" over simulated
// hosts: the command line's environment (password and ledger), the hosts
// and the run's id.
type runFixture struct {
	env    map[string]string
	ledger string
	hosts  []*simHost
	dir    string
	runID  string
}

// asyncRun starts "transfer --async" of file.bin and other.bin (served
// by the first host) into a fresh directory on n hosts and returns the
// run it recorded.
func asyncRun(t *testing.T, n int) *runFixture {
	t.Helper()
	rf := &runFixture{env: withPassword(), ledger: filepath.Join(t.TempDir(), "ledger.db"), dir: t.TempDir()}
	rf.env[fleet.EnvLedger] = rf.ledger
	args := []string{"transfer", "", "", rf.dir + "/", "--async", "-u", testUser, "-o", "jsonl"}
	for range n {
		h := newSimHost(t)
		rf.hosts = append(rf.hosts, h)
		args = append(args, "-H", h.hostArg())
	}
	args[1], args[2] = rf.hosts[0].FilesURL+"/file.bin", rf.hosts[0].FilesURL+"/other.bin"
	r := run(t, rf.env, args...)
	if r.code != 0 {
		t.Fatalf("transfer --async: exit %d\n%s", r.code, r.stderr)
	}
	runs := ledgerRuns(t, rf.env)
	if len(runs) != 1 || runs[0].Finished != nil || runs[0].Jobs != n || runs[0].Open != n {
		t.Fatalf("ledger after transfer --async: %+v", runs)
	}
	rf.runID = runs[0].ID
	// The run's id is offered on stderr for the wait to come.
	if want := "bitsremote: follow these jobs with: bitsremote wait --run " + rf.runID + " --complete\n"; !strings.HasSuffix(r.stderr, want) {
		t.Errorf("transfer --async stderr %q does not end with %q", r.stderr, want)
	}
	return rf
}

func ledgerRuns(t *testing.T, env map[string]string) []runRecord {
	t.Helper()
	r := run(t, env, "ledger", "list", "-o", "json")
	var runs []runRecord
	if err := json.Unmarshal([]byte(r.stdout), &runs); err != nil || r.code != 0 {
		t.Fatalf("ledger list: exit %d %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	return runs
}

// ledgerJobs returns the run's jobs as "ledger list --jobs" prints them,
// by host.
func ledgerJobs(t *testing.T, env map[string]string, runID string) map[string]fleet.Entry {
	t.Helper()
	r := run(t, env, "ledger", "list", "--jobs", "--run", runID, "-o", "jsonl")
	if r.code != 0 {
		t.Fatalf("ledger list --jobs: exit %d\n%s", r.code, r.stderr)
	}
	out := map[string]fleet.Entry{}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var e fleet.Entry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("ledger line %q: %v", l, err)
		}
		out[e.Host] = e
	}
	return out
}

// decodeArray parses a JSON array of objects.
func decodeArray(t *testing.T, s string) []map[string]any {
	t.Helper()
	var v []map[string]any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("output is not a JSON array of objects: %v\n%s", err, s)
	}
	return v
}

func keys(m map[string]any) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	sort.Strings(k)
	return k
}

// requests counts the host's requests by action.
func requests(h *simHost, from int) map[string]int {
	n := map[string]int{}
	for _, e := range h.Server.Log()[from:] {
		if e.Action != "" {
			n[e.Action]++
		}
	}
	return n
}

// TestWaitRunCompletes: the jobs of a "transfer --async" run on three
// hosts (two files each) are waited for and completed by "wait --run",
// with the hosts taken from the ledger; the records have the shape of a
// single wait's; the ledger shows every job acknowledged and the run
// finished; a second "wait --run" sends nothing to any host (no password
// needed) and reports the jobs as recorded, exit 0.
func TestWaitRunCompletes(t *testing.T) {
	rf := asyncRun(t, 3)
	before := ledgerJobs(t, rf.env, rf.runID)
	r := run(t, rf.env, "wait", "--run", rf.runID, "--complete", "--interval", "20ms", "--timeout", "30s", "-u", testUser, "-o", "json")
	if r.code != 0 {
		t.Fatalf("wait --run: exit %d\n%s", r.code, r.stderr)
	}
	recs := decodeArray(t, r.stdout)
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3\n%s", len(recs), r.stdout)
	}
	size := float64(len(rf.hosts[0].content) + 100)
	for _, m := range recs {
		h := m["host"].(string)
		e, ok := before[h]
		if !ok {
			t.Errorf("record for %s, not a host of the run", h)
			continue
		}
		o := m["outcome"].(map[string]any)
		for _, c := range []struct {
			field string
			got   any
			want  any
		}{
			{"jobId", m["jobId"], e.JobID},
			{"displayName", m["displayName"], "BITS Transfer"},
			{"state", m["state"], "Acknowledged"},
			{"filesTotal", m["filesTotal"], 2.0},
			{"filesTransferred", m["filesTransferred"], 2.0},
			{"bytesTotal", m["bytesTotal"], size},
			{"bytesTransferred", m["bytesTransferred"], size},
			{"priority", m["priority"], "Foreground"},
			{"error", m["error"], nil},
			{"outcome.result", o["result"], "Completed"},
			{"outcome.detail", o["detail"], "job transferred and completed"},
		} {
			if c.got != c.want {
				t.Errorf("%s: %s = %#v, want %#v", h, c.field, c.got, c.want)
			}
		}
		if p, _ := o["polls"].(float64); p < 1 {
			t.Errorf("%s: outcome.polls = %v", h, o["polls"])
		}
	}
	if !strings.HasSuffix(r.stderr, "summary: run "+rf.runID+": 3 jobs on 3 hosts: 3 ok, 0 failed; the run is finished\n") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	for _, name := range []string{"file.bin", "other.bin"} {
		want := rf.hosts[0].content
		if name == "other.bin" {
			want = want[:100]
		}
		if got := readFile(t, filepath.Join(rf.dir, name)); sha(got) != sha(want) {
			t.Errorf("%s: %d bytes, not the served file", name, len(got))
		}
	}

	// The record is a single wait's: the same fields, host first.
	single := newSimHost(t)
	env := withPassword()
	tr := run(t, env, "transfer", single.FilesURL+"/other.bin", tempPath(t, "s.bin"), "--async", "--no-ledger", "-H", single.hostArg(), "-u", testUser, "-o", "json")
	if tr.code != 0 {
		t.Fatalf("transfer --async: exit %d\n%s", tr.code, tr.stderr)
	}
	w := run(t, env, "wait", decode(t, tr.stdout)["jobId"].(string), "--complete", "--interval", "20ms", "-H", single.hostArg(), "-u", testUser, "-o", "json")
	if w.code != 0 {
		t.Fatalf("wait: exit %d\n%s", w.code, w.stderr)
	}
	if diff := cmp.Diff(keys(decode(t, w.stdout)), keys(recs[0])); diff != "" {
		t.Errorf("wait --run record fields differ from wait's (-wait +run):\n%s", diff)
	}
	if !strings.HasPrefix(strings.TrimSpace(r.stdout), "[\n  {\n    \"host\":") {
		t.Errorf("host is not the first field:\n%s", r.stdout)
	}

	// The ledger: every job acknowledged, the run finished.
	for h, e := range ledgerJobs(t, rf.env, rf.runID) {
		if e.Step != fleet.StepAcknowledged || e.State != "Acknowledged" || e.JobID != before[h].JobID {
			t.Errorf("%s: ledger %+v", h, e)
		}
	}
	if runs := ledgerRuns(t, rf.env); len(runs) != 1 || runs[0].Finished == nil || runs[0].Acknowledged != 3 || runs[0].Open != 0 {
		t.Errorf("runs after wait --run: %+v", runs)
	}

	// Again: nothing is polled, not even a connection made (no password).
	logs := make([]int, len(rf.hosts))
	for i, h := range rf.hosts {
		logs[i] = len(h.Server.Log())
	}
	noPassword := map[string]string{fleet.EnvLedger: rf.ledger}
	r = run(t, noPassword, "wait", "--run", rf.runID, "--complete", "-u", testUser, "-o", "jsonl")
	if r.code != 0 {
		t.Fatalf("second wait --run: exit %d\n%s", r.code, r.stderr)
	}
	for i, h := range rf.hosts {
		if n := len(h.Server.Log()) - logs[i]; n != 0 {
			t.Errorf("%s: %d requests in the second wait --run, want none: %v", h.hostArg(), n, requests(h, logs[i]))
		}
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("second wait --run: %d records\n%s", len(lines), r.stdout)
	}
	for _, l := range lines {
		m := decode(t, l)
		o := m["outcome"].(map[string]any)
		if m["state"] != "Acknowledged" || m["jobId"] != before[m["host"].(string)].JobID || o["result"] != "AlreadyDone" ||
			o["detail"] != "acknowledged in the ledger; not polled" || o["polls"] != 0.0 {
			t.Errorf("second wait --run record %s", l)
		}
	}
	if want := "summary: run " + rf.runID + ": 3 jobs on 3 hosts: 3 ok, 0 failed; 3 as recorded in the ledger, not polled\n"; r.stderr != want {
		t.Errorf("second wait --run stderr %q, want %q", r.stderr, want)
	}
	// And transfer --resume finds nothing left to do.
	r = run(t, rf.env, "transfer", rf.hosts[0].FilesURL+"/file.bin", rf.hosts[0].FilesURL+"/other.bin", rf.dir+"/", "--resume",
		"-H", rf.hosts[0].hostArg(), "-u", testUser)
	if r.code != ExitUsage || !strings.Contains(r.stderr, "--resume: no interrupted transfer with these jobs") {
		t.Errorf("transfer --resume after wait --run: exit %d\n%s", r.code, r.stderr)
	}
}

// TestWaitRunHostDown: one of the run's hosts stops answering. Its job
// is given up at --unreachable-timeout (exit 4, left in the ledger), the
// others complete; with -H only the hosts named are waited for, and the
// ones left out are named on stderr.
func TestWaitRunHostDown(t *testing.T) {
	rf := asyncRun(t, 3)
	before := ledgerJobs(t, rf.env, rf.runID)
	h1, h2, down := rf.hosts[0].hostArg(), rf.hosts[1].hostArg(), rf.hosts[2].hostArg()
	rf.hosts[2].Server.Close()

	// Only h1: the others are left out, and said to be.
	r := run(t, rf.env, "wait", "--run", rf.runID, "--complete", "--interval", "20ms", "-H", h1, "-u", testUser, "-o", "jsonl")
	if r.code != 0 {
		t.Fatalf("wait --run -H h1: exit %d\n%s", r.code, r.stderr)
	}
	if m := decode(t, r.stdout); m["host"] != h1 || m["state"] != "Acknowledged" {
		t.Errorf("wait --run -H h1: %s", r.stdout)
	}
	left := []string{h2, down}
	sort.Strings(left) // the ledger's order
	if want := "wait --run: 2 of the 3 hosts of run " + rf.runID + " are not among the hosts given and are left out: " + strings.Join(left, ", ") + "\n"; !strings.HasPrefix(r.stderr, want) {
		t.Errorf("stderr:\n%s\nwant first:\n%s", r.stderr, want)
	}

	r = run(t, rf.env, "wait", "--run", rf.runID, "--complete", "--interval", "20ms", "--unreachable-timeout", "300ms", "--retries", "0",
		"-u", testUser, "-o", "json")
	if r.code != ExitConnection {
		t.Fatalf("wait --run with a host down: exit %d, want 4\n%s", r.code, r.stderr)
	}
	got := map[string]string{}
	for _, m := range decodeArray(t, r.stdout) {
		h := m["host"].(string)
		got[h] = m["outcome"].(map[string]any)["result"].(string) + " " + m["state"].(string)
		if m["jobId"] != before[h].JobID {
			t.Errorf("%s: jobId %v, want %s", h, m["jobId"], before[h].JobID)
		}
	}
	want := map[string]string{h1: "AlreadyDone Acknowledged", h2: "Completed Acknowledged", down: "TimedOut " + before[down].State}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	for _, s := range []string{
		"bitsremote: " + down + ": job " + before[down].JobID + ": job not seen in the 300ms since the wait began; host unreachable: ",
		"summary: run " + rf.runID + ": 3 jobs on 3 hosts: 2 ok, 1 failed; 1 as recorded in the ledger, not polled\n",
	} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
	steps := map[string]fleet.Step{}
	for h, e := range ledgerJobs(t, rf.env, rf.runID) {
		steps[h] = e.Step
	}
	if diff := cmp.Diff(map[string]fleet.Step{h1: fleet.StepAcknowledged, h2: fleet.StepAcknowledged, down: fleet.StepLeft}, steps); diff != "" {
		t.Errorf("ledger steps (-want +got):\n%s", diff)
	}
	if runs := ledgerRuns(t, rf.env); runs[0].Finished != nil || runs[0].Open != 1 {
		t.Errorf("the run is finished with a job left: %+v", runs[0])
	}
}

// TestWaitRunCancelledBehindOurBack: a job cancelled on its host by
// someone else is reported as gone (exit 1) and recorded so; the other
// host's job completes.
func TestWaitRunCancelledBehindOurBack(t *testing.T) {
	rf := asyncRun(t, 2)
	before := ledgerJobs(t, rf.env, rf.runID)
	victim, other := rf.hosts[0].hostArg(), rf.hosts[1].hostArg()
	if r := run(t, rf.env, "cancel", before[victim].JobID, "-H", victim, "-u", testUser); r.code != 0 {
		t.Fatalf("cancel: exit %d\n%s", r.code, r.stderr)
	}
	r := run(t, rf.env, "wait", "--run", rf.runID, "--complete", "--interval", "20ms", "--timeout", "30s", "-u", testUser, "-o", "json")
	if r.code != ExitJobFailed {
		t.Fatalf("wait --run: exit %d, want 1\n%s", r.code, r.stderr)
	}
	results := map[string]string{}
	for _, m := range decodeArray(t, r.stdout) {
		results[m["host"].(string)] = m["outcome"].(map[string]any)["result"].(string)
	}
	if diff := cmp.Diff(map[string]string{victim: "Gone", other: "Completed"}, results); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	if !strings.Contains(r.stderr, "bitsremote: "+victim+": job "+before[victim].JobID+": job is no longer on the host (completed or cancelled elsewhere); last recorded state "+before[victim].State+"\n") {
		t.Errorf("stderr does not name the gone job:\n%s", r.stderr)
	}
	after := ledgerJobs(t, rf.env, rf.runID)
	if e := after[victim]; e.Step != fleet.StepGone || e.Error != "job is no longer on the host (completed or cancelled elsewhere); last recorded state "+before[victim].State {
		t.Errorf("ledger for the cancelled job: %+v", e)
	}
	if e := after[other]; e.Step != fleet.StepAcknowledged {
		t.Errorf("ledger for the other job: %+v", e)
	}
	// Every job is final, so the run is finished; again, the gone job
	// is reported as recorded, still exit 1.
	if runs := ledgerRuns(t, rf.env); runs[0].Finished == nil {
		t.Errorf("run not finished: %+v", runs[0])
	}
	r = run(t, rf.env, "wait", "--run", rf.runID, "-u", testUser)
	if r.code != ExitJobFailed || !strings.Contains(r.stdout, "gone in the ledger; not polled") || !strings.HasPrefix(r.stdout, "HOST ") {
		t.Errorf("second wait --run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

// TestWaitRunUsage: bad --run command lines exit 2 with a message that
// says what is wrong, before any host is asked.
func TestWaitRunUsage(t *testing.T) {
	h := newSimHost(t)
	ledger := filepath.Join(t.TempDir(), "ledger.db")
	env := withPassword()
	env[fleet.EnvLedger] = ledger
	// A ledger with one run in it.
	if r := run(t, env, "transfer", h.FilesURL+"/other.bin", tempPath(t, "o.bin"), "--async", "-H", h.hostArg(), "-u", testUser); r.code != 0 {
		t.Fatalf("transfer --async: exit %d\n%s", r.code, r.stderr)
	}
	const id = "{0BADC0DE-0000-4000-8000-000000000003}"
	missing := filepath.Join(t.TempDir(), "none.db")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown run", []string{"wait", "--run", "20260101T000000Z-deadbeef"}, "bitsremote: no run 20260101T000000Z-deadbeef in the ledger " + ledger + " (see 'bitsremote ledger list')\n"},
		{"no ledger file", []string{"wait", "--run", "20260101T000000Z-deadbeef", "--ledger", missing}, "bitsremote: no run 20260101T000000Z-deadbeef: there is no ledger at " + missing + " yet (see 'bitsremote ledger list', or give --ledger FILE)\n"},
		{"run and a job id", []string{"wait", id, "--run", "20260101T000000Z-deadbeef"}, "bitsremote: bitsremote wait: --run RUN_ID and JOBID arguments do not go together: wait for a run's jobs or for the jobs named\nRun 'bitsremote wait --help' for usage.\n"},
		{"neither", []string{"wait"}, "bitsremote: bitsremote wait needs a JOBID (or several), or --run RUN_ID\nRun 'bitsremote wait --help' for usage.\n"},
		{"empty run", []string{"wait", "--run", " "}, "bitsremote: bitsremote wait: --run is empty\n"},
		{"no-ledger", []string{"wait", "--run", "20260101T000000Z-deadbeef", "--no-ledger"}, "bitsremote: --run reads the run from the ledger and records its jobs there; drop --no-ledger\n"},
		{"ledger without run", []string{"wait", id, "--ledger", ledger}, "bitsremote: bitsremote wait: --ledger and --no-ledger go with --run\n"},
		{"bad job id among several", []string{"wait", id, "nope"}, "bitsremote: job id \"nope\" is not a GUID like {A1B2C3D4-0000-0000-0000-000000000000}\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := len(h.Server.Log())
			r := run(t, env, append(c.args, "-H", h.hostArg(), "-u", testUser)...)
			if r.code != ExitUsage || r.stderr != c.want {
				t.Errorf("exit %d, stderr:\n%q\nwant exit 2 and\n%q", r.code, r.stderr, c.want)
			}
			if got := len(h.Server.Log()) - n; got != 0 {
				t.Errorf("%d requests reached the host", got)
			}
		})
	}
	t.Run("hosts given are none of the run's", func(t *testing.T) {
		runs := ledgerRuns(t, env)
		other := newSimHost(t)
		r := run(t, env, "wait", "--run", runs[0].ID, "-H", other.hostArg(), "-u", testUser)
		want := "bitsremote: none of the hosts given is in run " + runs[0].ID + " (its hosts: " + h.hostArg() + ")\n"
		if r.code != ExitUsage || r.stderr != want {
			t.Errorf("exit %d, stderr %q, want %q", r.code, r.stderr, want)
		}
	})
}

// TestWaitSeveralJobs: "wait JOBID JOBID" follows both jobs on the host
// through shared enumerations of its queue and prints one record each.
func TestWaitSeveralJobs(t *testing.T) {
	h := newSimHost(t)
	base := []string{"-H", h.hostArg(), "-u", testUser}
	var ids []string
	for _, name := range []string{"a.bin", "b.bin"} {
		r := run(t, withPassword(), append([]string{"transfer", h.FilesURL + "/file.bin", tempPath(t, name), "--async", "--no-ledger", "-o", "json"}, base...)...)
		if r.code != 0 {
			t.Fatalf("transfer --async: exit %d\n%s", r.code, r.stderr)
		}
		ids = append(ids, decode(t, r.stdout)["jobId"].(string))
	}
	from := len(h.Server.Log())
	// The second id in lower case without braces is the same job: once.
	r := run(t, withPassword(), append([]string{"wait", ids[0], ids[1], strings.ToLower(strings.Trim(ids[1], "{}")), "--complete", "--interval", "20ms", "--timeout", "30s", "-o", "json"}, base...)...)
	if r.code != 0 {
		t.Fatalf("wait: exit %d\n%s", r.code, r.stderr)
	}
	recs := decodeArray(t, r.stdout)
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2\n%s", len(recs), r.stdout)
	}
	for i, m := range recs {
		if m["host"] != h.hostArg() || m["jobId"] != ids[i] || m["state"] != "Acknowledged" || m["outcome"].(map[string]any)["result"] != "Completed" {
			t.Errorf("record %d: %v", i, m)
		}
	}
	if n := requests(h, from)[wsman.ActionEnumerate]; n < 1 {
		t.Errorf("no shared enumeration: %v", requests(h, from))
	}
	// Completed jobs have left the queue: not found, exit 5, each named.
	r = run(t, withPassword(), append([]string{"wait", ids[0], ids[1], "--interval", "20ms"}, base...)...)
	if r.code != ExitFault || r.stdout != "" || !strings.Contains(r.stderr, ids[0]) || !strings.Contains(r.stderr, ids[1]) ||
		!strings.HasSuffix(r.stderr, "bitsremote: "+h.hostArg()+": 2 of 2 jobs failed\n") {
		t.Errorf("wait on completed jobs: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

// TestWaitRunBoard: on a terminal, wait --run over several hosts draws
// transfer's per-host board, each host's job counted done at the end.
func TestWaitRunBoard(t *testing.T) {
	rf := asyncRun(t, 2)
	ios, _, out, errOut := Test()
	ios.StderrTTY = true
	f := NewFactory()
	f.IO = ios
	f.Getenv = func(k string) string { return rf.env[k] }
	code := Execute(context.Background(), f, []string{"wait", "--run", rf.runID, "--complete", "--interval", "20ms", "-u", testUser, "-o", "jsonl"})
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut.String())
	}
	if n := strings.Count(strings.TrimSpace(out.String()), "\n") + 1; n != 2 {
		t.Errorf("%d records\n%s", n, out.String())
	}
	for _, h := range rf.hosts {
		// The final draw: every host's line, its one job done.
		if want := "\r\x1b[2K" + fmt.Sprintf("%-22s 1/1 done", h.hostArg()); !strings.Contains(errOut.String(), want) {
			t.Errorf("board lacks %q:\n%q", want, errOut.String())
		}
	}
}

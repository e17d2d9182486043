package cli

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/internal/fleet"
)

// TestTransferResumeJobGone: after "transfer --async" on two hosts, one
// host's job is cancelled there by someone else. "transfer --resume"
// records it gone, with the reason wait --run gives, and exits 1 (the
// job did not succeed; before, a not-found fault, exit 5, left the job
// open, so every later resume failed the same way); the other host's job
// is completed and acknowledged, and the run is finished. A second
// --resume finds no interrupted run and sends nothing to either host.
func TestTransferResumeJobGone(t *testing.T) {
	rf := asyncRun(t, 2)
	before := ledgerJobs(t, rf.env, rf.runID)
	victim, other := rf.hosts[0].hostArg(), rf.hosts[1].hostArg()
	id := before[victim].JobID
	if r := run(t, rf.env, "cancel", id, "-H", victim, "-u", testUser); r.code != 0 {
		t.Fatalf("cancel: exit %d\n%s", r.code, r.stderr)
	}
	from := len(rf.hosts[0].Server.Log())
	args := []string{"transfer", rf.hosts[0].FilesURL + "/file.bin", rf.hosts[0].FilesURL + "/other.bin", rf.dir + "/", "--resume",
		"--interval", "20ms", "--timeout", "30s", "-H", victim, "-H", other, "-u", testUser, "-o", "jsonl"}
	r := run(t, rf.env, args...)
	if r.code != ExitJobFailed {
		t.Fatalf("transfer --resume: exit %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	reason := fleet.GoneReason + before[victim].State
	recs := map[string][]map[string]any{}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		m := decode(t, l)
		recs[m["host"].(string)] = append(recs[m["host"].(string)], m)
	}
	// The gone job's record: the job as the ledger last saw it, a Gone
	// outcome with the reason; then the host's failure record.
	if got := recs[victim]; len(got) != 2 {
		t.Fatalf("%s: %d records, want the job's and the failure\n%s", victim, len(got), r.stdout)
	}
	job := recs[victim][0]
	if o, ok := job["outcome"].(map[string]any); ok {
		delete(o, "elapsedSeconds") // the only field that varies
	}
	st, err := bitsprov.ParseState(before[victim].State)
	if err != nil {
		t.Fatal(err)
	}
	var files []any
	for _, name := range []string{"file.bin", "other.bin"} {
		files = append(files, map[string]any{"remoteUrl": rf.hosts[0].FilesURL + "/" + name, "localFile": rf.dir + "/" + name,
			"bytesTotal": nil, "bytesTransferred": 0.0, "completed": false})
	}
	// The job as the ledger last saw it: its id, name, state and files;
	// one poll found it missing.
	want := map[string]any{
		"host": victim, "jobId": id, "displayName": "BITS Transfer", "description": "", "type": nil, "priority": "Foreground",
		"state": before[victim].State, "stateCode": float64(st), "owner": "", "files": files,
		"bytesTotal": nil, "bytesTransferred": 0.0, "filesTotal": 2.0, "filesTransferred": 0.0,
		"minimumRetryDelay": 0.0, "noProgressTimeout": 0.0, "transientErrorCount": 0.0,
		"created": nil, "modified": nil, "completed": nil, "error": nil,
		"outcome": map[string]any{"result": "Gone", "polls": 1.0, "detail": reason},
	}
	if d := cmp.Diff(want, job); d != "" {
		t.Errorf("%s record (-want +got):\n%s", victim, d)
	}
	failure := "" + victim + ": job " + id + ": " + reason
	if d := cmp.Diff(map[string]any{"host": victim, "exitCode": 1.0, "failure": failure}, recs[victim][1]); d != "" {
		t.Errorf("%s failure record (-want +got):\n%s", victim, d)
	}
	if got := recs[other]; len(got) != 1 || got[0]["state"] != "Acknowledged" || got[0]["outcome"].(map[string]any)["result"] != "Completed" {
		t.Errorf("%s records: %v", other, got)
	}
	if !strings.Contains(r.stderr, "bitsremote: "+failure+"\n") {
		t.Errorf("stderr does not name the gone job:\n%s", r.stderr)
	}
	// One Get (or enumeration) found the job missing; nothing was
	// created, completed or cancelled on the victim.
	for action := range requests(rf.hosts[0], from) {
		if action == bitsprov.ResourceURI+"/CreateJob" || action == bitsprov.ResourceURI+"/SetJobState" {
			t.Errorf("%s: %s sent in the resume: %v", victim, action, requests(rf.hosts[0], from))
		}
	}

	after := ledgerJobs(t, rf.env, rf.runID)
	if e := after[victim]; e.Step != fleet.StepGone || e.Error != reason || e.JobID != id || e.State != before[victim].State {
		t.Errorf("ledger for the gone job: %+v", e)
	}
	if e := after[other]; e.Step != fleet.StepAcknowledged || e.JobID != before[other].JobID {
		t.Errorf("ledger for the other job: %+v", e)
	}
	runs := ledgerRuns(t, rf.env)
	if len(runs) != 1 || runs[0].Finished == nil || runs[0].Resumes != 1 || runs[0].Open != 0 {
		t.Errorf("run after the resume: %+v", runs)
	}

	// Again: the run is finished, so there is nothing to resume and no
	// host hears of it.
	logs := []int{len(rf.hosts[0].Server.Log()), len(rf.hosts[1].Server.Log())}
	r = run(t, rf.env, args...)
	if r.code != ExitUsage || !strings.Contains(r.stderr, "--resume: no interrupted transfer with these jobs in the ledger") {
		t.Errorf("second --resume: exit %d\n%s", r.code, r.stderr)
	}
	for i, h := range rf.hosts {
		if n := len(h.Server.Log()) - logs[i]; n != 0 {
			t.Errorf("%s: %d requests in the second --resume: %v", h.hostArg(), n, requests(h, logs[i]))
		}
	}
	if e := ledgerJobs(t, rf.env, rf.runID)[victim]; e.Step != fleet.StepGone || e.Error != reason {
		t.Errorf("ledger after the second --resume: %+v", e)
	}
}

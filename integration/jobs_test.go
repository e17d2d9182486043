package integration

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const networkService = `NT AUTHORITY\NETWORK SERVICE`

// ignoreTimes leaves the times to checkTimes, which knows their bounds.
var ignoreTimes = cmpopts.IgnoreFields(jobJSON{}, "Created", "Modified", "Completed")

// TestJobLifecycle walks one job through every job command over the
// default connection (NTLM with message encryption, as a default Windows
// host requires): create suspended, get, priority, add-file,
// set-credentials, set-proxy, resume, wait --complete, list, and get of a
// job that has left the queue.
func TestJobLifecycle(t *testing.T) {
	t.Parallel()
	s := startSim(t, simOptions{})
	fs := newFileServer(t)
	urlA, a := fs.addRandom("a.bin", 300_000)
	urlB, b := fs.addRandom("b.bin", 70_000)
	// b.bin needs the job's server credentials: set-credentials must
	// really reach the host.
	const jobPassword = "Job-Pass-7731"
	fs.requireBasic("b.bin", "svc-dl", jobPassword)
	dir := t.TempDir()
	localA, localB := filepath.Join(dir, "a.bin"), filepath.Join(dir, "b.bin")
	start := time.Now()
	host := s.host().Host

	res := s.run(t, "create", "--url", urlA, "--local", localA, "--suspended", "--name", "lifecycle",
		"--description", "made by TestJobLifecycle", "-o", "json")
	wantCode(t, res, 0)
	var c createJSON
	decode(t, res, &c)
	if !guidRE.MatchString(c.JobID) {
		t.Fatalf("create printed jobId %q, not a {GUID}", c.JobID)
	}
	if diff := cmp.Diff(createJSON{Host: host, JobID: c.JobID, Suspended: true}, c); diff != "" {
		t.Errorf("create -o json (-want +got):\n%s", diff)
	}
	id := c.JobID

	// get: every field of a fresh suspended job.
	res = s.run(t, "get", id, "-o", "json")
	wantCode(t, res, 0)
	wantKeys(t, json.RawMessage(res.Stdout), jobKeys...)
	if k := firstKey(t, []byte(res.Stdout)); k != "host" {
		t.Errorf("get -o json: first field %q, want host", k)
	}
	var j jobJSON
	decode(t, res, &j)
	stripMarker(t, &j)
	want := jobJSON{
		Host: host, JobID: id, DisplayName: "lifecycle", Description: "made by TestJobLifecycle",
		Priority: "Normal", State: "Suspended", StateCode: 3, Owner: networkService,
		Files:      []fileJSON{{RemoteURL: urlA, LocalFile: localA}},
		FilesTotal: 1, MinimumRetryDelay: 600, NoProgressTimeout: 1209600,
	}
	if diff := cmp.Diff(want, j, ignoreTimes); diff != "" {
		t.Errorf("get -o json of a new suspended job (-want +got):\n%s", diff)
	}
	checkTimes(t, j, start, false)

	// The table form, for people.
	res = s.run(t, "get", id)
	wantCode(t, res, 0)
	for _, line := range [][]string{{"JobId:", id}, {"State:", "Suspended (3)"}, {"Priority:", "Normal"}, {"Bytes:", "0 B / ?"}, {"File 1:", urlA, localA}} {
		if !hasLine(res.Stdout, line...) {
			t.Errorf("get: no line with %q\n%s", line, res.Stdout)
		}
	}

	// priority, add-file, set-proxy, set-credentials: an action record each.
	actions := []struct {
		args []string
		env  []string
		want actionJSON
	}{
		{[]string{"priority", id, "high"}, nil, actionJSON{Action: "priority", Detail: "High"}},
		{[]string{"add-file", id, urlB, localB}, nil, actionJSON{Action: "added file to", Detail: urlB + " -> " + localB}},
		{[]string{"set-proxy", id, "--usage", "override", "--list", "proxy1:8080", "--bypass", "<local>"}, nil, actionJSON{Action: "set proxy on", Detail: "Override"}},
		{[]string{"set-proxy", id, "--usage", "preconfig"}, nil, actionJSON{Action: "set proxy on", Detail: "Preconfig"}},
		{[]string{"set-credentials", id, "--target", "server", "--scheme", "basic", "--job-user", "svc-dl"},
			[]string{"BITSREMOTE_JOB_PASSWORD=" + jobPassword}, actionJSON{Action: "set credentials on", Detail: "Server Basic as svc-dl"}},
	}
	for _, a := range actions {
		res := run(t, runSpec{
			args:    append(append(a.args, "-o", "json"), s.conn(0)...),
			env:     append([]string{"BITSREMOTE_PASSWORD=" + s.password}, a.env...),
			secrets: append(s.secrets(), jobPassword),
		})
		wantCode(t, res, 0)
		var got actionJSON
		decode(t, res, &got)
		a.want.Host, a.want.JobID = host, id
		if diff := cmp.Diff(a.want, got); diff != "" {
			t.Errorf("%s -o json (-want +got):\n%s", a.args[0], diff)
		}
	}

	res = s.run(t, "get", id, "-o", "json")
	wantCode(t, res, 0)
	decode(t, res, &j)
	stripMarker(t, &j)
	want.Priority = "High"
	want.FilesTotal = 2
	want.Files = append(want.Files, fileJSON{RemoteURL: urlB, LocalFile: localB})
	if diff := cmp.Diff(want, j, ignoreTimes); diff != "" {
		t.Errorf("get after priority and add-file (-want +got):\n%s", diff)
	}

	res = s.run(t, "resume", id, "-o", "jsonl")
	wantCode(t, res, 0)
	if got := decodeLines[actionJSON](t, res); len(got) != 1 || got[0] != (actionJSON{Host: host, JobID: id, Action: "resumed"}) {
		t.Errorf("resume -o jsonl = %+v", got)
	}

	res = s.run(t, "wait", id, "--complete", "--interval", "50ms", "--timeout", "20s", "-o", "json")
	wantCode(t, res, 0)
	// Not a terminal: no progress bar, nothing on stderr.
	if res.Stderr != "" {
		t.Errorf("wait on a pipe wrote on stderr:\n%s", res.Stderr)
	}
	decode(t, res, &j)
	stripMarker(t, &j)
	total := uint64(len(a) + len(b))
	want.State, want.StateCode = "Acknowledged", 7
	want.BytesTotal, want.BytesTransferred = u64(total), total
	want.FilesTransferred = 2
	want.Files = []fileJSON{
		{RemoteURL: urlA, LocalFile: localA, BytesTotal: u64(uint64(len(a))), BytesTransferred: uint64(len(a)), Completed: true},
		{RemoteURL: urlB, LocalFile: localB, BytesTotal: u64(uint64(len(b))), BytesTransferred: uint64(len(b)), Completed: true},
	}
	want.Outcome = &outcomeJSON{Result: "Completed", Detail: "job transferred and completed"}
	if j.Outcome != nil {
		if j.Outcome.Polls < 1 || j.Outcome.ElapsedSeconds < 0 || j.Outcome.ElapsedSeconds > 20 {
			t.Errorf("wait outcome: %d polls in %v s", j.Outcome.Polls, j.Outcome.ElapsedSeconds)
		}
		j.Outcome.Polls, j.Outcome.ElapsedSeconds = 0, 0
	}
	if diff := cmp.Diff(want, j, ignoreTimes); diff != "" {
		t.Errorf("wait --complete -o json (-want +got):\n%s", diff)
	}
	checkTimes(t, j, start, true)
	sameBytes(t, "a.bin", readFile(t, localA), a)
	sameBytes(t, "b.bin", readFile(t, localB), b)
	if reqs := fs.log("b.bin"); len(reqs) == 0 {
		t.Errorf("the host never asked for b.bin")
	}

	// A completed job has left the queue.
	res = s.run(t, "list", "-o", "json")
	wantCode(t, res, 0)
	var list []jobJSON
	decode(t, res, &list)
	for _, lj := range list {
		if lj.JobID == id {
			t.Errorf("list still shows completed job %s: %+v", id, lj)
		}
	}
	res = s.run(t, "get", id)
	wantCode(t, res, 5)
	if !strings.Contains(res.Stderr, id) || !strings.Contains(res.Stderr, "not found") {
		t.Errorf("get of a completed job: stderr does not say %s was not found:\n%s", id, res.Stderr)
	}
}

// TestCreateLimits: BITS takes a display name of up to 256 characters and
// a description of up to 1,024, counted in UTF-16 code units; bitsremote
// appends a 50-character marker to every description (to find the job
// again after a lost reply), which leaves 974. Longer ones are refused
// before any host is contacted, with the limit in the message.
func TestCreateLimits(t *testing.T) {
	t.Parallel()
	s := startSim(t, simOptions{})
	local := filepath.Join(t.TempDir(), "limits.bin")
	for _, tc := range []struct {
		name, desc string
		code       int
		stderr     string
	}{
		{name: strings.Repeat("n", 256), desc: strings.Repeat("d", 974), code: 0},
		{name: strings.Repeat("é", 256), desc: strings.Repeat("é", 974), code: 0},
		{name: strings.Repeat("😀", 128), desc: strings.Repeat("😀", 487), code: 0},
		{name: "ok", desc: strings.Repeat("d", 975), code: 2, stderr: "--description is 975 characters long; bitsremote allows 974"},
		{name: "ok", desc: strings.Repeat("😀", 488), code: 2, stderr: "--description is 976 characters long"},
		{name: strings.Repeat("n", 257), desc: "", code: 2, stderr: "--name is 257 characters long; BITS allows 256"},
		{name: "ok", desc: "line\nbreak", code: 2, stderr: "control character"},
	} {
		res := s.run(t, "create", "--url", "http://127.0.0.1:1/x", "--local", local, "--suspended", "--name", tc.name, "--description", tc.desc, "-o", "json")
		wantCode(t, res, tc.code)
		if tc.code != 0 {
			if !strings.Contains(res.Stderr, tc.stderr) {
				t.Errorf("name %d, description %d characters: stderr lacks %q:\n%s", len(tc.name), len([]rune(tc.desc)), tc.stderr, res.Stderr)
			}
			continue
		}
		var c createJSON
		decode(t, res, &c)
		res = s.run(t, "get", c.JobID, "-o", "json")
		wantCode(t, res, 0)
		var j jobJSON
		decode(t, res, &j)
		stripMarker(t, &j)
		if j.DisplayName != tc.name || j.Description != tc.desc {
			t.Errorf("job created with a %d-character name and a %d-character description shows %d and %d",
				len([]rune(tc.name)), len([]rune(tc.desc)), len([]rune(j.DisplayName)), len([]rune(j.Description)))
		}
	}
}

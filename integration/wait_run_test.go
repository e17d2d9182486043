package integration

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
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
	bitsremote := s.withLedger(t, filepath.Join(t.TempDir(), "ledger.db"))

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

// TestWaitRunInventoryHostWithoutInventory: "transfer --async" over an
// Ansible INI inventory whose host web1 is at ansible_host 127.0.0.2 on
// the simulated host's own port, with its auth transport and encryption
// (the command line asks for Basic without encryption, which the host
// refuses); "wait --run RUN_ID" without --inventory reaches it the way
// the run did and completes the job, and the ledger holds no password.
func TestWaitRunInventoryHostWithoutInventory(t *testing.T) {
	t.Parallel()
	s := startSim(t, simOptions{ip: "127.0.0.2"})
	fs := newFileServer(t)
	u, content := fs.addRandom("inv.bin", 30_000)
	_, port, err := net.SplitHostPort(s.hosts[0].Host)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	inv := filepath.Join(dir, "hosts.ini")
	ini := "[windows]\nweb1 ansible_host=127.0.0.2 ansible_port=" + port + " ansible_winrm_transport=ntlm ansible_winrm_message_encryption=always\n"
	if err := os.WriteFile(inv, []byte(ini), 0o600); err != nil {
		t.Fatal(err)
	}
	ledger := filepath.Join(dir, "ledger.db")
	bitsremote := s.withLedger(t, ledger)
	flags := []string{"-u", "admin", "--auth", "basic", "--encryption", "never"}
	dest := filepath.Join(dir, "inv.bin")
	res := bitsremote(append([]string{"transfer", u, dest, "--async", "--inventory", inv, "-o", "jsonl"}, flags...)...)
	wantCode(t, res, 0)
	name := "web1:" + port
	jobs := decodeLines[jobJSON](t, res)
	if len(jobs) != 1 || jobs[0].Host != name || jobs[0].JobID == "" {
		t.Fatalf("transfer --async records %+v", jobs)
	}
	var runs []struct {
		ID string `json:"id"`
	}
	res = bitsremote("ledger", "list", "-o", "json")
	if err := json.Unmarshal([]byte(res.Stdout), &runs); err != nil || len(runs) != 1 {
		t.Fatalf("runs %+v, %v\n%s", runs, err, res)
	}

	res = bitsremote(append([]string{"wait", "--run", runs[0].ID, "--complete", "--interval", "50ms", "--timeout", "60s", "-o", "jsonl"}, flags...)...)
	wantCode(t, res, 0)
	got := decodeLines[jobJSON](t, res)
	if len(got) != 1 || got[0].Host != name || got[0].JobID != jobs[0].JobID || got[0].State != "Acknowledged" ||
		got[0].Outcome == nil || got[0].Outcome.Result != "Completed" {
		t.Errorf("wait --run records %+v", got)
	}
	sameBytes(t, "the transferred file", readFile(t, dest), content)
	var entries []struct {
		Host     string `json:"host"`
		Step     string `json:"step"`
		Endpoint struct {
			URL        string `json:"url"`
			Auth       string `json:"auth"`
			Encryption string `json:"encryption"`
		} `json:"endpoint"`
	}
	res = bitsremote("ledger", "list", "--jobs", "--run", runs[0].ID, "-o", "json")
	if err := json.Unmarshal([]byte(res.Stdout), &entries); err != nil {
		t.Fatalf("ledger list --jobs: %v\n%s", err, res)
	}
	if len(entries) != 1 || entries[0].Host != name || entries[0].Step != "acknowledged" ||
		entries[0].Endpoint.URL != "http://127.0.0.2:"+port+"/wsman" || entries[0].Endpoint.Auth != "ntlm" || entries[0].Endpoint.Encryption != "always" {
		t.Errorf("ledger jobs %+v", entries)
	}
	b, err := os.ReadFile(ledger)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range s.secrets() {
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("the ledger holds a secret")
		}
	}
}

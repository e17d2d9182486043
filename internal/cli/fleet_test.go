package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitsremote/bitsremote/internal/fleet"
)

// TestFleetTransferLedger runs a transfer on two hosts with a ledger, then
// reads and prunes the ledger through the command line.
func TestFleetTransferLedger(t *testing.T) {
	h1, h2 := newSimHost(t), newSimHost(t)
	ledger := filepath.Join(t.TempDir(), "state", "ledger.db")
	env := withPassword()
	env[fleet.EnvLedger] = ledger
	local := tempPath(t, "out.bin")
	args := []string{"transfer", h1.FilesURL + "/file.bin", local, "-H", h1.hostArg(), "-H", h2.hostArg(), "-u", testUser, "--interval", "20ms", "-o", "jsonl"}
	r := run(t, env, args...)
	if r.code != 0 {
		t.Fatalf("transfer: exit %d\n%s", r.code, r.stderr)
	}
	var hosts []string
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		m := decode(t, line)
		if m["state"] != "Acknowledged" || m["outcome"].(map[string]any)["result"] != "Completed" {
			t.Errorf("record %v", m)
		}
		hosts = append(hosts, m["host"].(string))
	}
	if len(hosts) != 2 || !strings.Contains(r.stderr, "summary: 2 hosts: 2 ok, 0 failed") {
		t.Errorf("hosts %v, stderr %q", hosts, r.stderr)
	}
	if st, err := os.Stat(ledger); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("ledger file: %v %v", st, err)
	}

	// A finished run cannot be resumed.
	r = run(t, env, append(args, "--resume")...)
	if r.code != ExitUsage || !strings.Contains(r.stderr, "--resume: no interrupted transfer with these jobs in the ledger "+ledger) {
		t.Errorf("resume of a finished run: exit %d\n%s", r.code, r.stderr)
	}
	if r := run(t, env, append(args, "--resume", "--no-ledger")...); r.code != ExitUsage || !strings.Contains(r.stderr, "--resume needs the ledger") {
		t.Errorf("--resume --no-ledger: exit %d\n%s", r.code, r.stderr)
	}

	r = run(t, env, "ledger", "list", "-o", "json")
	var runs []runRecord
	if err := json.Unmarshal([]byte(r.stdout), &runs); err != nil || r.code != 0 {
		t.Fatalf("ledger list: %v\n%s%s", err, r.stdout, r.stderr)
	}
	if len(runs) != 1 || runs[0].Command != "transfer" || runs[0].Hosts != 2 || runs[0].Jobs != 2 || runs[0].Acknowledged != 2 || runs[0].Finished == nil || runs[0].Resumes != 0 {
		t.Errorf("runs %+v", runs)
	}
	r = run(t, env, "ledger", "list", "--jobs", "--run", runs[0].ID, "-o", "jsonl")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("ledger jobs:\n%s", r.stdout)
	}
	for _, l := range lines {
		var e fleet.Entry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		if e.Step != fleet.StepAcknowledged || e.JobID == "" || e.Request.Files[0].LocalFile != local || strings.Contains(l, testPassword) {
			t.Errorf("entry %s", l)
		}
	}
	r = run(t, env, "ledger", "list")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "RUN") || !strings.Contains(r.stdout, "finished") {
		t.Errorf("ledger table:\n%s", r.stdout)
	}
	r = run(t, env, "ledger", "prune")
	if r.code != 0 || r.stdout != "removed 1 run(s) and 2 job record(s) from "+ledger+"\n" {
		t.Errorf("prune: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	r = run(t, env, "ledger", "list", "--ledger", filepath.Join(t.TempDir(), "none.db"), "-o", "json")
	if r.code != 0 || r.stdout != "[]\n" || !strings.Contains(r.stderr, "no ledger at") {
		t.Errorf("missing ledger: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
}

// TestFleetInventoryLimit selects hosts of an Ansible inventory with
// --limit; one host's failure does not stop the others, and the worst
// exit code wins.
func TestFleetInventoryLimit(t *testing.T) {
	h1, h2 := newSimHost(t), newSimHost(t)
	inv := filepath.Join(t.TempDir(), "inventory.yml")
	body := "all:\n  children:\n    web:\n      hosts:\n        " + h1.hostArg() + ":\n        " + h2.hostArg() + ":\n" +
		"    broken:\n      hosts:\n        127.0.0.1:1:\n"
	if err := os.WriteFile(inv, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	r := run(t, withPassword(), "list", "--inventory", inv, "--limit", "web", "-u", testUser, "-o", "json")
	if r.code != 0 || !strings.Contains(r.stderr, "summary: 2 hosts: 2 ok, 0 failed") {
		t.Errorf("--limit web: exit %d\n%s", r.code, r.stderr)
	}
	r = run(t, withPassword(), "list", "--inventory", inv, "-u", testUser, "--retries", "0", "--timeout", "5s", "-o", "jsonl")
	if r.code != ExitConnection || !strings.Contains(r.stderr, "summary: 3 hosts: 2 ok, 1 failed") || !strings.Contains(r.stdout, `"host":"127.0.0.1:1","exitCode":4`) {
		t.Errorf("all hosts: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	r = run(t, withPassword(), "list", "--inventory", inv, "--limit", "db", "-u", testUser)
	if r.code != ExitUsage || !strings.Contains(r.stderr, `--limit: "db" matches no group or host in the inventory`) {
		t.Errorf("--limit db: exit %d\n%s", r.code, r.stderr)
	}
	r = run(t, withPassword(), "list", "--host-timeout", "-1s", "-H", h1.hostArg(), "-u", testUser)
	if r.code != ExitUsage || !strings.Contains(r.stderr, "--host-timeout must not be negative") {
		t.Errorf("--host-timeout -1s: exit %d\n%s", r.code, r.stderr)
	}
}

// TestJobPasswordNeedsSealingPerHost: an inventory that turns message
// encryption off for one host keeps the job password from going there
// over plain http.
func TestJobPasswordNeedsSealingPerHost(t *testing.T) {
	h := newSimHost(t)
	inv := filepath.Join(t.TempDir(), "inv.ini")
	if err := os.WriteFile(inv, []byte(h.hostArg()+" ansible_winrm_message_encryption=never\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := withPassword()
	env[EnvJobPassword] = "job-secret-1"
	r := run(t, env, "transfer", h.FilesURL+"/file.bin", tempPath(t, "x.bin"), "--job-user", "svc", "--inventory", inv, "-u", testUser)
	if r.code != ExitUsage || !strings.Contains(r.stderr, "refusing to send a job password over http:// without message encryption") {
		t.Errorf("exit %d\n%s", r.code, r.stderr)
	}
	if n := len(h.Server.Log()); n != 0 {
		t.Errorf("%d requests reached the host", n)
	}
}

package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/bitsremote/bitsremote/internal/fleet"
)

// writeInventory writes a YAML inventory with one host, web1, and its
// variables.
func writeInventory(t *testing.T, vars map[string]string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("all:\n  hosts:\n    web1:\n")
	for _, k := range []string{"ansible_host", "ansible_port", "ansible_winrm_transport", "ansible_winrm_message_encryption"} {
		if v, ok := vars[k]; ok {
			fmt.Fprintf(&b, "      %s: %s\n", k, v)
		}
	}
	p := filepath.Join(t.TempDir(), "hosts.yml")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestWaitRunReachesInventoryHost: "transfer --async --inventory" over a
// host known by its inventory name, with its address, port, auth
// transport and encryption in the inventory (the command line says
// otherwise, and would fail: Basic without encryption, which the host
// refuses); "wait --run RUN_ID" without the inventory reaches it as the
// run did and completes the job. An inventory given explicitly wins over
// the ledger: one that says to send unencrypted fails as it says.
func TestWaitRunReachesInventoryHost(t *testing.T) {
	h := newSimHost(t)
	port := strings.TrimPrefix(h.hostArg(), "127.0.0.1:")
	inv := writeInventory(t, map[string]string{"ansible_host": "127.0.0.1", "ansible_port": port,
		"ansible_winrm_transport": "ntlm", "ansible_winrm_message_encryption": "always"})
	env := withPassword()
	env[fleet.EnvLedger] = filepath.Join(t.TempDir(), "ledger.db")
	name := "web1:" + port
	flags := []string{"-u", testUser, "--auth", "basic", "--encryption", "never"}
	r := run(t, env, append([]string{"transfer", h.FilesURL + "/other.bin", tempPath(t, "o.bin"), "--async", "--inventory", inv, "-o", "jsonl"}, flags...)...)
	if r.code != 0 {
		t.Fatalf("transfer --async: exit %d\n%s", r.code, r.stderr)
	}
	if m := decode(t, r.stdout); m["host"] != name {
		t.Fatalf("transfer --async record: %s", r.stdout)
	}
	runs := ledgerRuns(t, env)
	if len(runs) != 1 {
		t.Fatalf("runs %+v", runs)
	}
	id := runs[0].ID
	e := ledgerJobs(t, env, id)[name]
	want := &fleet.HostRecord{URL: "http://127.0.0.1:" + port + "/wsman", Auth: "ntlm", Encryption: "always", Account: "admin"}
	if d := cmp.Diff(want, e.Endpoint); d != "" {
		t.Fatalf("recorded endpoint (-want +got):\n%s", d)
	}

	// Explicit: the inventory given is used, not the ledger's record.
	plain := writeInventory(t, map[string]string{"ansible_host": "127.0.0.1", "ansible_port": port,
		"ansible_winrm_transport": "ntlm", "ansible_winrm_message_encryption": "never"})
	from := len(h.Server.Log())
	r = run(t, env, append([]string{"wait", "--run", id, "--complete", "--interval", "20ms", "--unreachable-timeout", "2s", "--retries", "0", "-i", plain}, flags...)...)
	// The host refuses an unsealed request as a default Windows host
	// does (HTTP 500).
	refused := "bitsremote: " + name + ": Get on " + e.JobID + ": HTTP 500\n"
	if r.code != ExitFault || !strings.HasPrefix(r.stderr, refused) {
		t.Fatalf("wait --run with an inventory that sends unencrypted: exit %d, want 5 and first %q\n%s", r.code, refused, r.stderr)
	}
	if len(h.Server.Log()) == from {
		t.Errorf("the host was not asked")
	}
	if e := ledgerJobs(t, env, id)[name]; e.Step != fleet.StepResumed || e.Endpoint == nil || *e.Endpoint != *want {
		t.Errorf("the failed wait changed the ledger: %+v", e)
	}

	// Without the inventory: reached as recorded.
	r = run(t, env, append([]string{"wait", "--run", id, "--complete", "--interval", "20ms", "--timeout", "30s", "-o", "jsonl"}, flags...)...)
	if r.code != 0 {
		t.Fatalf("wait --run without --inventory: exit %d\n%s", r.code, r.stderr)
	}
	m := decode(t, r.stdout)
	if m["host"] != name || m["jobId"] != e.JobID || m["state"] != "Acknowledged" || m["outcome"].(map[string]any)["result"] != "Completed" {
		t.Errorf("wait --run record: %s", r.stdout)
	}
	if e := ledgerJobs(t, env, id)[name]; e.Step != fleet.StepAcknowledged {
		t.Errorf("ledger: %+v", e)
	}
	if runs := ledgerRuns(t, env); runs[0].Finished == nil {
		t.Errorf("run not finished: %+v", runs[0])
	}
}

// stripEndpoint rewrites the host's entries of the run as a bitsremote
// that did not record endpoints wrote them: the same JSON without the
// "endpoint" field.
func stripEndpoint(t *testing.T, ledger, runID, host string) {
	t.Helper()
	db, err := bolt.Open(ledger, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("jobs"))
		prefix := []byte(runID + "\x00" + host + "\x00")
		n := 0
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(v, &m); err != nil {
				return err
			}
			if _, ok := m["endpoint"]; !ok {
				return fmt.Errorf("%q: no endpoint recorded", k)
			}
			delete(m, "endpoint")
			nv, err := json.Marshal(m)
			if err != nil {
				return err
			}
			if err := b.Put(append([]byte(nil), k...), nv); err != nil {
				return err
			}
			n++
		}
		if n == 0 {
			return fmt.Errorf("no entry of %s in run %s", host, runID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestWaitRunOldLedgerEntry: a ledger entry written before endpoints
// were recorded still reaches its host as before, by its name and this
// command line's flags, while a recorded host is reached as recorded:
// with --https the old entry's host is tried over TLS (and fails: it
// serves http; exit 4, nothing recorded), the recorded one is not and
// completes; without --https the old one completes too, and its entry
// then records the endpoint that worked.
func TestWaitRunOldLedgerEntry(t *testing.T) {
	rf := asyncRun(t, 2)
	old, recorded := rf.hosts[0].hostArg(), rf.hosts[1].hostArg()
	stripEndpoint(t, rf.ledger, rf.runID, old)
	before := ledgerJobs(t, rf.env, rf.runID)
	if before[old].Endpoint != nil || before[recorded].Endpoint == nil {
		t.Fatalf("ledger: %+v", before)
	}

	r := run(t, rf.env, "wait", "--run", rf.runID, "--complete", "--https", "--interval", "20ms", "--unreachable-timeout", "300ms", "--retries", "0",
		"-u", testUser, "-o", "json")
	if r.code != ExitConnection {
		t.Fatalf("wait --run --https: exit %d, want 4\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	got := map[string]any{}
	for _, m := range decodeArray(t, r.stdout) {
		got[m["host"].(string)] = m["state"]
	}
	if d := cmp.Diff(map[string]any{old: before[old].State, recorded: "Acknowledged"}, got); d != "" {
		t.Errorf("records' states (-want +got):\n%s", d)
	}
	tls := "bitsremote: " + old + ": Get on " + before[old].JobID + ": post to " + old + ": tls handshake with " + old + ": tls: first record does not look like a TLS handshake\n"
	if !strings.Contains(r.stderr, tls) {
		t.Errorf("stderr does not say the old entry's host was tried over https (%q):\n%s", tls, r.stderr)
	}
	after := ledgerJobs(t, rf.env, rf.runID)
	if e := after[old]; e.Step != fleet.StepResumed || e.Endpoint != nil {
		t.Errorf("old entry after the failed wait: %+v", e)
	}
	if e := after[recorded]; e.Step != fleet.StepAcknowledged {
		t.Errorf("recorded entry after the wait: %+v", e)
	}

	r = run(t, rf.env, "wait", "--run", rf.runID, "--complete", "--interval", "20ms", "--timeout", "30s", "-u", testUser, "-o", "jsonl")
	if r.code != 0 {
		t.Fatalf("wait --run: exit %d\n%s", r.code, r.stderr)
	}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		m := decode(t, l)
		if m["state"] != "Acknowledged" {
			t.Errorf("record %s", l)
		}
	}
	if e := ledgerJobs(t, rf.env, rf.runID)[old]; e.Step != fleet.StepAcknowledged || e.Endpoint == nil || e.Endpoint.URL != "http://"+old+"/wsman" {
		t.Errorf("old entry at the end: %+v", e)
	}
}

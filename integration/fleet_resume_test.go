package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/bitsprov/bitssim"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// TestFleetTransferKilledAndResumed kills the binary with SIGKILL in the
// middle of a 200-job fleet transfer (import-csv: 10 rows on 20 hosts,
// NTLM with message encryption), runs it again with --resume, and checks
// on the hosts themselves that every job was created exactly once and
// ended Acknowledged: 200 CreateJob calls in all, every file in place,
// no job left in any queue, and the ledger's 200 JobIds distinct and
// acknowledged.
//
// The hosts run in the test process so that their request logs can be
// read; only the client is killed.
func TestFleetTransferKilledAndResumed(t *testing.T) {
	const (
		nHosts   = 20
		nRows    = 10
		password = "Fleet-Resume-1"
	)
	files, dst, state := t.TempDir(), t.TempDir(), t.TempDir()
	payload := bytes.Repeat([]byte("0123456789abcdef"), 64<<10/16) // 64 KiB
	if err := os.WriteFile(filepath.Join(files, "p.bin"), payload, 0o644); err != nil {
		t.Fatal(err)
	}
	var hosts []*bitssim.Host
	var hostFlags []string
	for i := range nHosts {
		hc := bitssim.HostConfig{
			Server:   wsmantest.Config{Auth: wsmantest.AuthNTLM, RequireEncryption: true, Users: map[string]string{"admin": password}, Machine: fmt.Sprintf("FLEET%02d", i+1)},
			Provider: bitssim.Config{TimeScale: 0.01, Slots: 2},
		}
		if i == 0 {
			hc.FilesDir = files
		}
		h, err := bitssim.NewHost(hc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.Close)
		hosts = append(hosts, h)
		hostFlags = append(hostFlags, "-H", strings.TrimSuffix(strings.TrimPrefix(h.URL, "http://"), "/wsman"))
	}
	// The hosts share this machine's disk, so the 20 jobs of a row write
	// the same destination; each downloads into its own BIT*.tmp and the
	// Complete renames it into place.
	var csv strings.Builder
	csv.WriteString("Source,Destination\n")
	for r := range nRows {
		fmt.Fprintf(&csv, "%s/p.bin,%s\n", hosts[0].FilesURL, filepath.Join(dst, fmt.Sprintf("row%02d.bin", r+1)))
	}
	csvPath := filepath.Join(t.TempDir(), "rows.csv")
	if err := os.WriteFile(csvPath, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	ledger := filepath.Join(state, "ledger.db")
	args := append([]string{"import-csv", csvPath, "-u", "admin", "--ledger", ledger, "-o", "jsonl",
		"--interval", "50ms", "--concurrency", "8"}, hostFlags...)
	env := append(baseEnv(), "BITSREMOTE_PASSWORD="+password)

	countCreates := func() int {
		n := 0
		for _, h := range hosts {
			for _, e := range h.Server.Log() {
				if e.Action == bitsprov.ResourceURI+"/CreateJob" && e.Status == 200 {
					n++
				}
			}
		}
		return n
	}

	// Run 1: killed once about half the jobs exist.
	cmd := exec.Command(binary, args...)
	cmd.Env = env
	var out1 bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out1, &out1
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for countCreates() < nHosts*nRows/2 {
		if time.Now().After(deadline) {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			_ = cmd.Wait()
			t.Fatalf("only %d jobs created after 60 s\n%s", countCreates(), out1.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("run 1 was not killed: %v (did it finish before the kill?)\n%s", err, out1.String())
	}
	killedAt := countCreates()
	t.Logf("killed after %d of %d CreateJob calls", killedAt, nHosts*nRows)

	// Run 2: resumed to the end.
	res := run(t, runSpec{args: append(args, "--resume"), env: []string{"BITSREMOTE_PASSWORD=" + password},
		secrets: []string{password}, timeout: 120 * time.Second})
	wantCode(t, res, 0)

	if n := countCreates(); n != nHosts*nRows {
		t.Errorf("%d CreateJob calls in all, want %d: a job was created twice or never", n, nHosts*nRows)
	}
	// Every queue is empty: nothing created twice is left behind, nothing
	// is waiting to be completed.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, h := range hosts {
		tr, err := transport.New(transport.Config{Auth: transport.AuthNTLM, User: "admin", Password: password, Encryption: transport.EncryptionAlways})
		if err != nil {
			t.Fatal(err)
		}
		jobs, err := bitsprov.NewClient(wsman.NewClient(h.URL, tr)).Jobs(ctx, bitsprov.JobFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			t.Errorf("%s: job %s left in the queue in state %v (%s)", h.URL, j.JobID, j.State, j.Description)
		}
	}
	// Completed downloads are renamed into place: every row's file is
	// there with the full payload.
	for r := range nRows {
		b, err := os.ReadFile(filepath.Join(dst, fmt.Sprintf("row%02d.bin", r+1)))
		if err != nil || !bytes.Equal(b, payload) {
			t.Errorf("row %d: %d bytes, %v", r+1, len(b), err)
		}
	}
	// The ledger knows 200 distinct jobs, all acknowledged.
	lres := run(t, runSpec{args: []string{"ledger", "list", "--ledger", ledger, "--jobs", "-o", "jsonl"}})
	wantCode(t, lres, 0)
	type ledgerJob struct {
		Host  string `json:"host"`
		JobID string `json:"jobId"`
		Step  string `json:"step"`
	}
	seen := map[string]bool{}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(lres.Stdout), "\n") {
		var j ledgerJob
		if err := json.Unmarshal([]byte(line), &j); err != nil {
			t.Fatalf("ledger line %q: %v", line, err)
		}
		n++
		if seen[j.JobID] {
			t.Errorf("JobId %s twice in the ledger", j.JobID)
		}
		seen[j.JobID] = true
		if j.Step != "acknowledged" {
			t.Errorf("%s job %s: %s", j.Host, j.JobID, j.Step)
		}
	}
	if n != nHosts*nRows {
		t.Errorf("ledger lists %d jobs, want %d\n%s", n, nHosts*nRows, lres)
	}
}

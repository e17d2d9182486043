package integration

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWaitSurvivesHostRestart starts "wait" on a job that is mid-transfer,
// kills the host without warning, brings it back on the same port with
// the same state directory, and lets the transfer go on: the wait rides
// out the refused connections and the new NTLM session, and ends with the
// job completed (exit 0); the host resumes the download with a Range
// request from where it had got to, as BITS does after a service restart,
// and the file arrives byte for byte.
//
// The host keeps its queue in sim --state-dir, as the BITS service keeps
// its queue across restarts.
func TestWaitSurvivesHostRestart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		stop func(*sim)
		ip   string
	}{
		{"killed", (*sim).crash, ipRestartKilled},
		{"stopped", (*sim).stop, ipRestartStopped},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			waitAcrossRestart(t, tc.stop, tc.ip)
		})
	}
}

// waitAcrossRestart is TestWaitSurvivesHostRestart with one way of
// stopping the host: SIGKILL (a crash) or SIGTERM (a service restart). The
// host listens on ip, which no other test uses, so that its port is still
// free when it comes back.
func waitAcrossRestart(t *testing.T, stop func(*sim), ip string) {
	state := t.TempDir()
	s := startSim(t, simOptions{ip: ip, extra: []string{"--state-dir", state}})
	fs := newFileServer(t)
	const size, stallAt = 400_000, 150_000
	u, content := fs.addRandom("restart.bin", size)
	fs.stall("restart.bin", stallAt)
	local := filepath.Join(t.TempDir(), "restart.bin")

	res := s.run(t, "create", "--url", u, "--local", local)
	wantCode(t, res, 0)
	id := strings.TrimSpace(res.Stdout)
	waitProgress(t, s, id, stallAt)

	// wait in the background, as a cron job would run it.
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"wait", id, "--complete", "--interval", "100ms", "-o", "json"}, s.conn(0)...)...)
	cmd.Env = append(baseEnv(), "BITSREMOTE_PASSWORD="+s.password)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	// Let the wait poll the live host, then pull the plug; keep the host
	// down for a few of the wait's polls.
	time.Sleep(400 * time.Millisecond)
	stop(s)
	time.Sleep(700 * time.Millisecond)
	select {
	case err := <-waited:
		t.Fatalf("wait ended while the host was down: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	default:
	}
	s.restart()
	if got, want := s.host().Host, net.JoinHostPort(ip, strconv.Itoa(s.opts.port)); got != want {
		t.Fatalf("the host came back at %s, want %s", got, want)
	}
	// The job is back, with its progress, before any byte moves again.
	waitProgress(t, s, id, stallAt)
	fs.unstall("restart.bin")

	var err error
	select {
	case err = <-waited:
	case <-ctx.Done():
		<-waited
		t.Fatalf("wait did not end after the host came back\nstdout:\n%s\nstderr:\n%s", &stdout, &stderr)
	}
	res = result{Args: cmd.Args[1:], Stdout: stdout.String(), Stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	checkNoSecrets(t, res, s.secrets())
	wantCode(t, res, 0)
	var j jobJSON
	decode(t, res, &j)
	if j.JobID != id || j.State != "Acknowledged" || j.Outcome == nil || j.Outcome.Result != "Completed" ||
		j.BytesTotal == nil || *j.BytesTotal != size || j.BytesTransferred != size {
		t.Errorf("wait across a restart: %+v, outcome %+v", j, j.Outcome)
	}
	sameBytes(t, "restart.bin", readFile(t, local), content)

	// The first request fetched from 0; the host came back and asked for
	// the rest only.
	reqs := fs.log("restart.bin")
	if len(reqs) < 2 || reqs[0].Range != "" {
		t.Fatalf("requests for the file: %+v; want a plain GET, then a Range request after the restart", reqs)
	}
	last := reqs[len(reqs)-1].Range
	var from int
	if _, err := fmt.Sscanf(last, "bytes=%d-", &from); err != nil || from <= 0 || from > stallAt {
		t.Errorf("after the restart the host asked for %q; want bytes=N- with 0 < N <= %d (progress kept)", last, stallAt)
	}
}

// waitProgress polls get until the job reports at least n bytes.
func waitProgress(t *testing.T, s *sim, id string, n uint64) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		res := s.run(t, "get", id, "-o", "json")
		if res.Code == 5 {
			t.Fatalf("the host does not know job %s:\n%s", id, res)
		}
		if res.Code == 0 {
			var j jobJSON
			decode(t, res, &j)
			if j.BytesTransferred >= n {
				return
			}
			if j.State == "Error" || j.State == "Cancelled" {
				t.Fatalf("job %s is %s while waiting for progress: %+v", id, j.State, j.Error)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s has not reached %d bytes after 15 s:\n%s", id, n, res)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

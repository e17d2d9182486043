package fleet

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/bitsprov"
)

// screen replays the board's escape sequences (cursor up, clear line)
// onto a slice of lines, as a terminal would show them.
func screen(out string) []string {
	var lines []string
	row := 0
	for len(out) > 0 {
		switch {
		case strings.HasPrefix(out, "\x1b["):
			end := strings.IndexAny(out, "AK")
			arg, op := out[2:end], out[end]
			out = out[end+1:]
			if op == 'A' {
				n := 0
				for _, c := range arg {
					n = n*10 + int(c-'0')
				}
				row -= n
			} else if row < len(lines) {
				lines[row] = ""
			}
		case out[0] == '\r':
			out = out[1:]
		case out[0] == '\n':
			row++
			out = out[1:]
		default:
			end := strings.IndexAny(out, "\r\n\x1b")
			if end < 0 {
				end = len(out)
			}
			for len(lines) <= row {
				lines = append(lines, "")
			}
			lines[row] += out[:end]
			out = out[end:]
		}
	}
	return lines[:row]
}

func TestBoard(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	b := NewBoard(&buf, []string{"h1:5985", "h2:5985", "h3:5985", "h4:5985"}, 2)
	b.now = func() time.Time { now = now.Add(time.Second); return now }
	b.Height = 4
	total := uint64(1000)
	b.Update("h2:5985", 0, &bitsprov.Job{State: bitsprov.StateTransferring, BytesTransferred: 250, BytesTotal: &total})
	b.Update("h2:5985", 1, &bitsprov.Job{State: bitsprov.StateQueued, BytesTotal: &total})
	b.JobDone(JobResult{Host: "h3:5985", Index: 0, Step: StepAcknowledged, Job: &bitsprov.Job{State: bitsprov.StateAcknowledged, BytesTransferred: 1000, BytesTotal: &total}})
	b.JobDone(JobResult{Host: "h3:5985", Index: 1, Step: StepCancelled, Err: errors.New("404")})
	b.HostDone(Result{Host: "h4:5985", Err: errors.New("h4:5985: connection refused")})
	want := []string{
		"h2:5985                0/2 done  (1 Queued, 1 Transferring)  250 B/2.0 KiB  12%",
		"h1:5985                waiting",
		"… and 2 more hosts (2 finished, 0 to go)",
	}
	if d := cmp.Diff(want, screen(buf.String())); d != "" {
		t.Errorf("screen (-want +got):\n%s", d)
	}
	b.JobDone(JobResult{Host: "h2:5985", Index: 0, Step: StepAcknowledged})
	b.JobDone(JobResult{Host: "h2:5985", Index: 1, Step: StepResumed, Err: context.Canceled})
	b.Close()
	want = []string{
		"h1:5985                waiting",
		"h2:5985                1/2 done, 1 failed  250 B/2.0 KiB  12%",
		"h3:5985                1/2 done, 1 failed  1000 B/1000 B 100%",
		"h4:5985                failed: h4:5985: connection refused",
	}
	if d := cmp.Diff(want, screen(buf.String())); d != "" {
		t.Errorf("final screen (-want +got):\n%s", d)
	}
}

func TestBoardThrottles(t *testing.T) {
	var buf bytes.Buffer
	b := NewBoard(&buf, []string{"h1"}, 1)
	fixed := time.Unix(100, 0)
	b.now = func() time.Time { return fixed }
	b.Update("h1", 0, &bitsprov.Job{State: bitsprov.StateQueued})
	n := buf.Len()
	b.Update("h1", 0, &bitsprov.Job{State: bitsprov.StateTransferring})
	if buf.Len() != n {
		t.Errorf("redrew within the interval: %q", buf.String())
	}
	b.Close()
	if got := screen(buf.String()); len(got) != 1 || !strings.Contains(got[0], "1 Transferring") {
		t.Errorf("final: %q", got)
	}
}

// TestWaitJobs follows two jobs on one host: the good one is completed,
// the one whose URL is missing is cancelled with its error.
func TestWaitJobs(t *testing.T) {
	f := newSimFleet(t, 1)
	p := f.pool(t)
	c, err := p.Conn(0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var ids []string
	for _, name := range []string{"a.bin", "missing.bin"} {
		id, err := c.Bits.CreateJob(ctx, bitsprov.CreateJobOptions{DisplayName: name, RemoteURL: f.hosts[0].FilesURL + "/" + name, LocalFile: filepath.Join(t.TempDir(), name)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	var buf bytes.Buffer
	b := NewBoard(&buf, p.Names(), 2)
	res := WaitJobs(ctx, c, ids, bitsprov.Policy{Interval: 20 * time.Millisecond}, b.Update, b.JobDone)
	b.Close()
	if r := res[0]; r.Step != StepAcknowledged || r.Err != nil || r.Outcome.Action != bitsprov.ResultCompleted {
		t.Errorf("good job: %+v", r)
	}
	if r := res[1]; r.Step != StepCancelled || r.Err == nil || r.Outcome.Error == nil || !strings.Contains(r.Err.Error(), "404") {
		t.Errorf("missing file: %+v %v", r, r.Err)
	}
	if got := screen(buf.String()); len(got) != 1 || !strings.Contains(got[0], "1/2 done, 1 failed") {
		t.Errorf("board: %q", got)
	}
	// Both jobs are final: nothing polls the host any more.
	f.hosts[0].Server.ResetLog()
	time.Sleep(100 * time.Millisecond)
	if l := f.hosts[0].Server.Log(); len(l) != 0 {
		t.Errorf("host still polled: %+v", l)
	}
}

// TestBoardLog prints messages above the board without losing lines.
func TestBoardLog(t *testing.T) {
	var buf bytes.Buffer
	b := NewBoard(&buf, []string{"h1", "h2"}, 1)
	b.now = func() time.Time { return time.Unix(0, 0) }
	b.Update("h1", 0, &bitsprov.Job{State: bitsprov.StateQueued})
	b.Log("bitsremote: h2: connection refused")
	b.HostDone(Result{Host: "h2", Err: errors.New("h2: connection refused")})
	b.Log("summary: 2 hosts: 1 ok, 1 failed")
	b.Close()
	want := []string{
		"bitsremote: h2: connection refused",
		"summary: 2 hosts: 1 ok, 1 failed",
		"h1                     0/1 done  (1 Queued)",
		"h2                     failed: h2: connection refused",
	}
	if d := cmp.Diff(want, screen(buf.String())); d != "" {
		t.Errorf("screen (-want +got):\n%s", d)
	}
}

package fleet

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
)

// progressURI is where the progress enumeration goes: the namespace, the
// class being named by the WQL query.
const progressURI = wsman.ResourceWMI + "/root/microsoft/bits/*"

// requests lists the host's requests as "Operation ResourceURI".
func (f *simFleet) requests(i int) []string {
	var out []string
	for _, e := range f.hosts[i].Server.Log() {
		if e.Action != "" && e.Status == 200 {
			out = append(out, e.Action[strings.LastIndex(e.Action, "/")+1:]+" "+e.ResourceURI)
		}
	}
	return out
}

func (f *simFleet) countRequests(i int, req string) int {
	n := 0
	for _, r := range f.requests(i) {
		if r == req {
			n++
		}
	}
	return n
}

// waitForRequests waits until host i has served n requests req.
func (f *simFleet) waitForRequests(t *testing.T, i int, req string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for f.countRequests(i, req) < n {
		if time.Now().After(deadline) {
			t.Fatalf("host %d never served %d × %s: %v", i, n, req, f.requests(i))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// createJobs creates suspended jobs named names on host 0, downloading
// the file of the same name (a missing one fails with 404).
func createJobs(t *testing.T, f *simFleet, c *Conn, names ...string) []string {
	t.Helper()
	dst := t.TempDir()
	var ids []string
	for _, name := range names {
		id, err := c.Bits.CreateJob(context.Background(), bitsprov.CreateJobOptions{DisplayName: name, Description: "desc " + name,
			RemoteURL: f.hosts[0].FilesURL + "/" + name, LocalFile: filepath.Join(dst, name), Suspended: true})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// checkWhole checks that a result's job is the whole job: the same in the
// result and the outcome, with the fields no progress read carries.
func checkWhole(t *testing.T, r JobResult, name string) {
	t.Helper()
	j := r.Job
	if j == nil || r.Outcome == nil || r.Outcome.Job != j {
		t.Fatalf("%s: job %+v, outcome %+v", name, j, r.Outcome)
	}
	if j.JobID != r.JobID || j.DisplayName != name || !strings.HasPrefix(j.Description, "desc "+name) || j.Owner == "" || j.Created.IsZero() ||
		j.NoProgressTimeout == 0 || len(j.Files) != 1 || !strings.HasSuffix(j.Files[0].RemoteURL, "/"+name) {
		t.Errorf("%s: recorded job is not whole: %+v", name, j)
	}
}

// TestHostJobsReadsProgress: the first cycle reads the queue whole, later
// ones only the progress; jobs in progress are answered from it, partial,
// and a job in a state the poller acts on is read whole with Get.
func TestHostJobsReadsProgress(t *testing.T) {
	f, c := oneHost(t)
	ctx := context.Background()
	ids := createJobs(t, f, c, "a.bin", "b.bin", "missing.bin")
	src := NewHostJobs(ctx, c.Bits, time.Nanosecond) // every call enumerates again
	for range ids {
		defer src.Follow()()
	}
	f.hosts[0].Server.ResetLog()
	j, err := src.Job(ctx, ids[0])
	if err != nil || j.DisplayName != "a.bin" || j.State != bitsprov.StateSuspended {
		t.Fatalf("first read: %+v, %v", j, err)
	}
	j, err = src.Job(ctx, ids[0])
	if err != nil || j.DisplayName != "" || len(j.Files) != 0 || j.JobID != ids[0] || j.State != bitsprov.StateSuspended || j.FilesTotal != 1 {
		t.Fatalf("progress read: %+v, %v", j, err)
	}
	if _, err := c.Bits.SetJobState(ctx, ids[2], bitsprov.ActionResume); err != nil {
		t.Fatal(err)
	}
	for {
		j, err = src.Job(ctx, ids[2])
		if err != nil {
			t.Fatal(err)
		}
		if j.State == bitsprov.StateError {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if j.DisplayName != "missing.bin" || len(j.Files) != 1 {
		t.Errorf("job in Error handed out partial: %+v", j)
	}
	reqs := f.requests(0)
	job := "/BitsClientJob"
	want := []string{"Enumerate " + bitsprov.ResourceURI, "Pull " + bitsprov.ResourceURI, "Enumerate " + progressURI, "Pull " + progressURI, "SetJobState " + bitsprov.ResourceURI}
	if len(reqs) < len(want)+3 || !cmp.Equal(want, reqs[:len(want)]) {
		t.Fatalf("requests: %v", reqs)
	}
	// Then progress enumerations until the job is seen in Error, and the
	// Get that reads it whole.
	rest := reqs[len(want):]
	if last := rest[len(rest)-1]; last != "Get "+bitsprov.ResourceURI {
		t.Errorf("last request %s, want a Get", last)
	}
	for _, r := range rest[:len(rest)-1] {
		if strings.HasSuffix(r, job) {
			t.Errorf("whole read %s before the job reached Error: %v", r, reqs)
		}
	}
}

// TestWaitRecordsWholeJobs follows jobs that end every way a wait ends,
// with the host's queue read by progress in between, and checks that
// each result (and outcome) holds the whole job.
func TestWaitRecordsWholeJobs(t *testing.T) {
	f, c := oneHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("transferred error timeout gone", func(t *testing.T) {
		names := []string{"a.bin", "missing.bin", "b.bin", "gone.bin", "c.bin"}
		ids := createJobs(t, f, c, names...)
		f.hosts[0].Server.ResetLog()
		done := make(chan []JobResult)
		go func() {
			done <- WaitJobs(ctx, c, ids, bitsprov.Policy{Interval: 20 * time.Millisecond, Timeout: 1500 * time.Millisecond}, nil, nil)
		}()
		// Once the queue is read by progress: a.bin transfers, missing.bin
		// fails, b.bin and c.bin stay suspended (their waits time out;
		// two, so that the queue is still read for both), gone.bin is
		// cancelled behind the wait's back.
		f.waitForRequests(t, 0, "Enumerate "+progressURI, 3)
		for _, k := range []int{0, 1} {
			if _, err := c.Bits.SetJobState(ctx, ids[k], bitsprov.ActionResume); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.Bits.Cancel(ctx, ids[3]); err != nil {
			t.Fatal(err)
		}
		res := <-done
		want := []bitsprov.Result{bitsprov.ResultCompleted, bitsprov.ResultCancelled, bitsprov.ResultTimedOut, bitsprov.ResultGone, bitsprov.ResultTimedOut}
		for i, r := range res {
			if r.Outcome == nil || r.Outcome.Action != want[i] {
				t.Errorf("%s: outcome %+v, want %v", names[i], r.Outcome, want[i])
				continue
			}
			checkWhole(t, r, names[i])
		}
		if s := res[2].Job.State; s != bitsprov.StateSuspended {
			t.Errorf("timed out job recorded in state %v", s)
		}
		// The polls went by progress: one whole enumeration at the
		// start, then progress only; Gets only for the jobs acted on.
		if n := f.countRequests(0, "Enumerate "+bitsprov.ResourceURI); n != 1 {
			t.Errorf("%d whole enumerations, want 1", n)
		}
		if n := f.countRequests(0, "Enumerate "+progressURI); n < 10 {
			t.Errorf("%d progress enumerations, want many", n)
		}
		if n := f.countRequests(0, "Get "+bitsprov.ResourceURI); n > 8 {
			t.Errorf("%d Gets: polls did not go by progress: %v", n, f.requests(0))
		}
	})

	t.Run("interrupted", func(t *testing.T) {
		names := []string{"a.bin", "b.bin"}
		ids := createJobs(t, f, c, names...)
		f.hosts[0].Server.ResetLog()
		wctx, stop := context.WithCancel(ctx)
		done := make(chan []JobResult)
		go func() { done <- WaitJobs(wctx, c, ids, bitsprov.Policy{Interval: 20 * time.Millisecond}, nil, nil) }()
		f.waitForRequests(t, 0, "Enumerate "+progressURI, 2)
		before := len(f.requests(0))
		stop()
		for i, r := range <-done {
			if !errors.Is(r.Err, context.Canceled) {
				t.Errorf("%s: err %v", names[i], r.Err)
			}
			checkWhole(t, r, names[i])
		}
		// Interrupted, the records come from the whole read taken at the
		// start with the newest progress: no Get holds up the exit. (A
		// Get may come first, before both waits are counted.)
		if after := f.requests(0)[before:]; slices.Contains(after, "Get "+bitsprov.ResourceURI) {
			t.Errorf("a Get after the interrupt: %v", after)
		}
	})

	t.Run("cancel on timeout", func(t *testing.T) {
		names := []string{"a.bin", "b.bin"}
		ids := createJobs(t, f, c, names...)
		f.hosts[0].Server.ResetLog()
		res := WaitJobs(ctx, c, ids, bitsprov.Policy{Interval: 20 * time.Millisecond, Timeout: 300 * time.Millisecond, CancelOnTimeout: true}, nil, nil)
		for i, r := range res {
			if r.Outcome == nil || r.Outcome.Action != bitsprov.ResultCancelled {
				t.Errorf("%s: outcome %+v", names[i], r.Outcome)
				continue
			}
			checkWhole(t, r, names[i])
		}
		if n := f.countRequests(0, "Enumerate "+progressURI); n < 3 {
			t.Errorf("%d progress enumerations: %v", n, f.requests(0))
		}
	})
}

// TestSettleHostDown: a wait that ends on a partial job while the host
// cannot be reached records the last whole read with the newer progress
// laid over it.
func TestSettleHostDown(t *testing.T) {
	f, c := oneHost(t)
	ctx := context.Background()
	ids := createJobs(t, f, c, "a.bin", "b.bin")
	src := NewHostJobs(ctx, c.Bits, time.Nanosecond)
	for range ids {
		defer src.Follow()()
	}
	if _, err := src.Job(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	part, err := src.Job(ctx, ids[0])
	if err != nil || part.DisplayName != "" {
		t.Fatalf("progress read: %+v, %v", part, err)
	}
	f.hosts[0].Close()
	got := src.Settle(ctx, ids[0], part)
	if got.DisplayName != "a.bin" || len(got.Files) != 1 || got.State != part.State || got.FilesTotal != part.FilesTotal {
		t.Errorf("settled: %+v", got)
	}
	// A job read whole is its own settlement.
	whole := &bitsprov.Job{JobID: ids[1]}
	if src.Settle(ctx, ids[1], whole) != whole {
		t.Error("a whole job was replaced")
	}
}

// TestHostJobsSilentHostDeadline: with two jobs followed on a host that
// takes requests and never answers, a wait's deadline ends it (timed out)
// even for the call that started the shared enumeration; the
// enumeration goes on under the host's context and ends with it.
func TestHostJobsSilentHostDeadline(t *testing.T) {
	hostCtx, cancelHost := context.WithCancel(context.Background())
	defer cancelHost()
	silent := transport.Func(func(ctx context.Context, _ *transport.Request) (*transport.Response, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	wc := wsman.NewClient("http://silent.example:5985/wsman", silent)
	wc.Retry = wsman.NoRetry
	h := NewHostJobs(hostCtx, bitsprov.NewClient(wc), 0)
	defer h.Follow()()
	defer h.Follow()()
	const id = "{5A1F0000-0000-4000-8000-000000000003}"
	done := make(chan error, 1)
	var out *bitsprov.Outcome
	go func() {
		var err error
		out, err = bitsprov.Wait(context.Background(), h, id, bitsprov.Policy{Interval: 10 * time.Millisecond, Timeout: 100 * time.Millisecond})
		done <- err
	}()
	select {
	case err := <-done:
		// Whichever of the two reads the deadline cut, the reason names
		// the host.
		if err != nil || out.Action != bitsprov.ResultTimedOut || !strings.HasPrefix(out.Reason, "deadline passed; host unreachable: ") ||
			!strings.Contains(out.Reason, "silent.example:5985") {
			t.Fatalf("Wait = %+v, %v; want TimedOut, host unreachable", out, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the wait is still running 30 s after its 100 ms deadline")
	}
}

// TestWaitJobsSilentHostEndsEnumeration: when every wait on a silent host
// has timed out, WaitJobs returns only once the shared enumeration it
// started has stopped: the enumeration must not run on under the
// command's context, against a connection the pool is about to close,
// after the host's work is over.
func TestWaitJobsSilentHostEndsEnumeration(t *testing.T) {
	var mu sync.Mutex
	inFlight := 0
	silent := transport.Func(func(ctx context.Context, _ *transport.Request) (*transport.Response, error) {
		mu.Lock()
		inFlight++
		mu.Unlock()
		defer func() {
			mu.Lock()
			inFlight--
			mu.Unlock()
		}()
		<-ctx.Done()
		return nil, ctx.Err()
	})
	wc := wsman.NewClient("http://silent.example:5985/wsman", silent)
	wc.Retry = wsman.NoRetry
	c := &Conn{Name: "silent.example", URL: "http://silent.example:5985/wsman", WSMan: wc, Bits: bitsprov.NewClient(wc)}
	ids := []string{"{5A1F0000-0000-4000-8000-000000000004}", "{5A1F0000-0000-4000-8000-000000000005}"}
	res := WaitJobs(context.Background(), c, ids, bitsprov.Policy{Interval: 10 * time.Millisecond, Timeout: 100 * time.Millisecond}, nil, nil)
	mu.Lock()
	left := inFlight
	mu.Unlock()
	if left != 0 {
		t.Errorf("%d requests still in flight after WaitJobs returned", left)
	}
	for i, r := range res {
		if r.Outcome == nil || r.Outcome.Action != bitsprov.ResultTimedOut {
			t.Errorf("job %d: outcome %+v, err %v; want TimedOut", i, r.Outcome, r.Err)
		}
	}
}

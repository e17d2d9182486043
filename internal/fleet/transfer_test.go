package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/bitsprov/bitssim"
	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

const (
	testUser     = "admin"
	testPassword = "pw-Fleet1"
	createAction = bitsprov.ResourceURI + "/CreateJob"
	stateAction  = bitsprov.ResourceURI + "/SetJobState"
)

type simFleet struct {
	hosts []*bitssim.Host
	files string
	cn    *Connector
	reqs  atomic.Int64
}

// newSimFleet starts n simulated hosts (Basic auth, fast timers) and a
// file server with a.bin and b.bin.
func newSimFleet(t *testing.T, n int) *simFleet {
	t.Helper()
	f := &simFleet{files: t.TempDir()}
	for name, size := range map[string]int{"a.bin": 20000, "b.bin": 300} {
		if err := os.WriteFile(filepath.Join(f.files, name), bytes.Repeat([]byte{'x'}, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		hc := bitssim.HostConfig{
			Server:   wsmantest.Config{Users: map[string]string{testUser: testPassword}, Machine: fmt.Sprintf("SIM%02d", i+1)},
			Provider: bitssim.Config{TimeScale: 0.001, Slots: 4},
		}
		if i == 0 {
			hc.FilesDir = f.files
		}
		h, err := bitssim.NewHost(hc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.Close)
		f.hosts = append(f.hosts, h)
	}
	f.cn = &Connector{
		Base: transport.Config{Auth: transport.AuthBasic, User: testUser, Password: testPassword},
		Wrap: func(_ string, tr transport.Transport) transport.Transport { return counter{tr, &f.reqs} },
	}
	return f
}

// oneHost starts a fleet of one simulated host and returns it with the
// host's connection (from a pool closed when the test ends).
func oneHost(t *testing.T) (*simFleet, *Conn) {
	t.Helper()
	f := newSimFleet(t, 1)
	c, err := f.pool(t).Conn(0)
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func (f *simFleet) pool(t *testing.T) *Pool {
	var hs []Host
	for _, h := range f.hosts {
		x, err := ParseHost(h.URL)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, x)
	}
	p := NewPool(hs, f.cn)
	t.Cleanup(p.Close)
	return p
}

func (f *simFleet) count(action string) int {
	n := 0
	for _, h := range f.hosts {
		for _, e := range h.Server.Log() {
			if e.Action == action && e.Status == 200 {
				n++
			}
		}
	}
	return n
}

type counter struct {
	next transport.Transport
	n    *atomic.Int64
}

func (c counter) RoundTrip(ctx context.Context, r *transport.Request) (*transport.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(ctx, r)
}

func (c counter) CloseIdleConnections() {
	if ci, ok := c.next.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

func testSpecs(f *simFleet, dst string) []JobSpec {
	url := f.hosts[0].FilesURL
	pr := bitsprov.PriorityHigh
	return []JobSpec{
		{Opts: bitsprov.CreateJobOptions{DisplayName: "one", RemoteURL: url + "/a.bin", LocalFile: filepath.Join(dst, "a.bin"), Priority: &pr, Description: "nightly"}},
		{Row: 2, Opts: bitsprov.CreateJobOptions{DisplayName: "two", RemoteURL: url + "/a.bin", LocalFile: filepath.Join(dst, "a2.bin"),
			ExtraFiles: []bitsprov.FileSpec{{RemoteURL: url + "/b.bin", LocalFile: filepath.Join(dst, "b.bin")}}, CancelOnSetupFailure: true}},
		{Row: 3, Opts: bitsprov.CreateJobOptions{DisplayName: "three", RemoteURL: url + "/b.bin", LocalFile: filepath.Join(dst, "b3.bin")}},
	}
}

// runTransfer runs specs on every host of the pool; each host gets its own
// destination directory under dst.
func runTransfer(ctx context.Context, t *testing.T, p *Pool, led *Ledger, run *Run, specs func(host string) []JobSpec) (map[string][]JobResult, Summary) {
	var mu sync.Mutex
	out := map[string][]JobResult{}
	_, sum := p.Run(ctx, Options{Concurrency: 4}, func(ctx context.Context, c *Conn) error {
		tr := &Transfer{Specs: specs(c.Name), Ledger: led, Run: run, Policy: bitsprov.Policy{Interval: 20 * time.Millisecond, Timeout: 20 * time.Second}}
		res, err := tr.Host(ctx, c)
		mu.Lock()
		out[c.Name] = res
		mu.Unlock()
		return err
	})
	return out, sum
}

func hostDir(t *testing.T, root, host string) string {
	d := filepath.Join(root, strings.ReplaceAll(host, ":", "_"))
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestTransferFleet(t *testing.T) {
	f := newSimFleet(t, 3)
	p := f.pool(t)
	led, _ := openTestLedger(t)
	dst := t.TempDir()
	specsFor := func(host string) []JobSpec { return testSpecs(f, hostDir(t, dst, host)) }
	fp := Fingerprint("transfer", testSpecs(f, dst))
	run, err := led.BeginRun("transfer", fp, "", false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, sum := runTransfer(ctx, t, p, led, run, specsFor)
	if sum != (Summary{Hosts: 3, OK: 3}) {
		t.Fatalf("summary %+v", sum)
	}
	for _, host := range p.Names() {
		rs := res[host]
		var steps []string
		for _, r := range rs {
			steps = append(steps, fmt.Sprintf("%d/%d/%s/%v", r.Index, r.Row, r.Step, r.Outcome.Action))
			if r.Err != nil || r.JobID == "" || r.Done || r.Adopted {
				t.Errorf("%s job %d: %+v", host, r.Index, r)
			}
		}
		if d := cmp.Diff([]string{"0/0/acknowledged/Completed", "1/2/acknowledged/Completed", "2/3/acknowledged/Completed"}, steps); d != "" {
			t.Errorf("%s (-want +got):\n%s", host, d)
		}
		for name, size := range map[string]int{"a.bin": 20000, "a2.bin": 20000, "b.bin": 300, "b3.bin": 300} {
			st, err := os.Stat(filepath.Join(dst, strings.ReplaceAll(host, ":", "_"), name))
			if err != nil || st.Size() != int64(size) {
				t.Errorf("%s %s: %v %v", host, name, st, err)
			}
		}
	}
	if n := f.count(createAction); n != 9 {
		t.Errorf("%d CreateJob calls, want 9", n)
	}
	entries, err := led.Entries(run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 9 {
		t.Fatalf("%d ledger entries, want 9", len(entries))
	}
	for _, e := range entries {
		if e.Step != StepAcknowledged || e.JobID == "" || e.State != "Acknowledged" || !strings.HasPrefix(e.Marker, "bitsremote:") {
			t.Errorf("entry %+v", e)
		}
	}
	tr := &Transfer{Specs: testSpecs(f, dst), Ledger: led, Run: run}
	if ok, err := tr.Finish(p.Names()); !ok || err != nil {
		t.Fatalf("Finish = %v, %v", ok, err)
	}

	// A finished run is not resumed.
	if _, err := led.BeginRun("transfer", fp, "", true); !errors.Is(err, ErrNoRun) {
		t.Errorf("resume of a finished run: %v", err)
	}
}

// killAfter is a transport that lets one matching request through and
// then "kills the process": it cancels the run's context and reports the
// request as cut off, as a crash right after sending would leave it.
type killAfter struct {
	next   transport.Transport
	match  string
	cancel func()
	fired  *atomic.Bool
}

func (k killAfter) RoundTrip(ctx context.Context, r *transport.Request) (*transport.Response, error) {
	resp, err := k.next.RoundTrip(ctx, r)
	if bytes.Contains(r.Body, []byte(k.match)) && k.fired.CompareAndSwap(false, true) {
		k.cancel()
		return nil, fmt.Errorf("killed after sending: %w", context.Canceled)
	}
	return resp, err
}

// TestTransferResume interrupts a fleet transfer twice and resumes it:
// first right after a CreateJob reached the host (the job exists, its
// JobId was never heard), then while jobs transfer. Every job must exist
// exactly once and end acknowledged, the lost job must be found by its
// marker, finished jobs must not be touched, and resuming a finished run
// must send nothing.
func TestTransferResume(t *testing.T) {
	f := newSimFleet(t, 2)
	led, _ := openTestLedger(t)
	dst := t.TempDir()
	specsFor := func(host string) []JobSpec { return testSpecs(f, hostDir(t, dst, host)) }
	fp := Fingerprint("transfer", testSpecs(f, dst))
	run, err := led.BeginRun("transfer", fp, "", false)
	if err != nil {
		t.Fatal(err)
	}
	runOnce := func(t *testing.T, wrap func(cancel func(), tr transport.Transport) transport.Transport, onProgress func(cancel func(), host string)) (map[string][]JobResult, Summary) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cn := *f.cn
		if wrap != nil {
			inner := cn.Wrap
			cn.Wrap = func(h string, tr transport.Transport) transport.Transport { return wrap(cancel, inner(h, tr)) }
		}
		var hs []Host
		for _, h := range f.hosts {
			x, _ := ParseHost(h.URL)
			hs = append(hs, x)
		}
		p := NewPool(hs, &cn)
		defer p.Close()
		var mu sync.Mutex
		res := map[string][]JobResult{}
		_, sum := p.Run(ctx, Options{Concurrency: 1}, func(hctx context.Context, c *Conn) error {
			tr := &Transfer{Specs: specsFor(c.Name), Ledger: led, Run: run,
				Policy: bitsprov.Policy{Interval: 20 * time.Millisecond, Timeout: 20 * time.Second}}
			if onProgress != nil {
				tr.OnProgress = func(host string, _ int, _ *bitsprov.Job) { onProgress(cancel, host) }
			}
			r, err := tr.Host(hctx, c)
			mu.Lock()
			res[c.Name] = r
			mu.Unlock()
			return err
		})
		return res, sum
	}
	names := f.pool(t).Names()
	h0, h1 := names[0], names[1]

	// Run 1: killed right after host 1's first CreateJob went out.
	var fired atomic.Bool
	res, sum := runOnce(t, func(cancel func(), tr transport.Transport) transport.Transport {
		return killAfter{next: tr, match: "CreateJob_INPUT", cancel: cancel, fired: &fired}
	}, nil)
	if sum.Failed != 2 {
		t.Fatalf("run 1: %+v", sum)
	}
	if r := res[h0][0]; r.Step != StepIntent || r.JobID != "" || !strings.Contains(r.Err.Error(), "run again with --resume") {
		t.Fatalf("run 1, job 0: %+v", r)
	}
	if n := f.count(createAction); n != 1 {
		t.Fatalf("run 1: %d CreateJob calls, want 1", n)
	}

	// Run 2: resumed, and interrupted again once host 2's jobs transfer.
	if run, err = led.BeginRun("transfer", fp, "", true); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	res, _ = runOnce(t, nil, func(cancel func(), host string) {
		if host == h1 {
			once.Do(cancel)
		}
	})
	if r := res[h0][0]; !r.Adopted || r.Step != StepAcknowledged {
		t.Errorf("run 2, job 0 on %s: not adopted by its marker: %+v", h0, r)
	}
	for _, r := range res[h0] {
		if r.Step != StepAcknowledged || r.Err != nil {
			t.Errorf("run 2, %s job %d: %s %v", h0, r.Index, r.Step, r.Err)
		}
	}
	// Host 2's jobs were interrupted in the wait, or while their
	// Complete was on the wire.
	for _, r := range res[h1] {
		if (r.Step != StepResumed && r.Step != StepCompleting) || !errors.Is(r.Err, context.Canceled) {
			t.Errorf("run 2, %s job %d: step %s err %v", h1, r.Index, r.Step, r.Err)
		}
	}

	// Run 3: resumed to the end.
	if run, err = led.BeginRun("transfer", fp, "", true); err != nil || run.Resumes != 2 {
		t.Fatalf("run 3: %+v, %v", run, err)
	}
	res, sum = runOnce(t, nil, nil)
	if sum != (Summary{Hosts: 2, OK: 2}) {
		t.Fatalf("run 3: %+v", sum)
	}
	for _, r := range res[h0] {
		if !r.Done {
			t.Errorf("run 3: finished job %d on %s touched again", r.Index, h0)
		}
	}
	if n := f.count(createAction); n != 6 {
		t.Errorf("%d CreateJob calls, want 6 (each job created once)", n)
	}
	entries, _ := led.Entries(run.ID)
	if len(entries) != 6 {
		t.Errorf("%d ledger entries", len(entries))
	}
	for _, e := range entries {
		if e.Step != StepAcknowledged || e.State != "Acknowledged" {
			t.Errorf("entry %s/%d: %s %s", e.Host, e.Index, e.Step, e.State)
		}
	}
	for _, host := range names {
		for _, name := range []string{"a.bin", "a2.bin", "b.bin", "b3.bin"} {
			if _, err := os.Stat(filepath.Join(dst, strings.ReplaceAll(host, ":", "_"), name)); err != nil {
				t.Errorf("%s: %v", host, err)
			}
		}
	}
	// No job is left in any queue.
	for _, h := range f.hosts {
		x, _ := ParseHost(h.URL)
		c, err := f.cn.Connect(x)
		if err != nil {
			t.Fatal(err)
		}
		if jobs, err := EnumerateJobs(context.Background(), c.WSMan); err != nil || len(jobs) != 0 {
			t.Errorf("%s queue: %v, %v", h.URL, jobs, err)
		}
		c.Close()
	}
	tr := &Transfer{Specs: testSpecs(f, dst), Ledger: led, Run: run}
	if ok, err := tr.Finish(names); !ok || err != nil {
		t.Fatalf("Finish = %v, %v", ok, err)
	}

	// Resuming a run whose jobs are all final sends nothing.
	before := f.reqs.Load()
	res, sum = runOnce(t, nil, nil)
	if sum.Failed != 0 || f.reqs.Load() != before {
		t.Errorf("run 4: %+v, %d requests", sum, f.reqs.Load()-before)
	}
	for _, r := range res[h1] {
		if !r.Done || r.Step != StepAcknowledged {
			t.Errorf("run 4: %s job %d: %+v", h1, r.Index, r)
		}
	}
}

// TestTransferCompletingResume covers a kill between recording Complete and
// hearing back: the job has left the queue, and the resumed run counts it
// acknowledged instead of losing it.
func TestTransferCompletingResume(t *testing.T) {
	f := newSimFleet(t, 1)
	p := f.pool(t)
	led, _ := openTestLedger(t)
	dst := t.TempDir()
	specs := testSpecs(f, dst)[2:]
	run, err := led.BeginRun("transfer", "fp", "", false)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := p.Conn(0)
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.Bits.CreateJob(ctx, specs[0].Opts)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, err := c.Bits.Job(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if j.State == bitsprov.StateTransferred {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job stuck in %v", j.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := c.Bits.Complete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := led.Put(&Entry{RunID: run.ID, Host: c.Name, Index: 0, Marker: bitsprov.NewMarker(), JobID: id, Step: StepCompleting}); err != nil {
		t.Fatal(err)
	}
	tr := &Transfer{Specs: specs, Ledger: led, Run: run, Policy: bitsprov.Policy{Interval: 10 * time.Millisecond}}
	res, err := tr.Host(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if r := res[0]; r.Step != StepAcknowledged || r.Outcome.Action != bitsprov.ResultCompleted || r.JobID != id {
		t.Fatalf("result %+v", r)
	}
	if n := f.count(createAction); n != 1 {
		t.Errorf("%d CreateJob calls", n)
	}
}

// TestHostJobsSharesEnumeration checks that waiting on many jobs of one
// host reads the queue with one enumeration per cycle instead of a Get
// per job.
func TestHostJobsSharesEnumeration(t *testing.T) {
	f, c := oneHost(t)
	ctx := context.Background()
	var ids []string
	for i := range 5 {
		id, err := c.Bits.CreateJob(ctx, bitsprov.CreateJobOptions{DisplayName: fmt.Sprint(i), RemoteURL: f.hosts[0].FilesURL + "/a.bin",
			LocalFile: filepath.Join(t.TempDir(), "x"), Suspended: true})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	src := NewHostJobs(ctx, c.Bits, time.Minute)
	var dones []func()
	for range ids {
		dones = append(dones, src.Follow())
	}
	f.hosts[0].Server.ResetLog()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j, err := src.Job(ctx, id)
			if err != nil || j.JobID != id || j.State != bitsprov.StateSuspended {
				t.Errorf("Job(%s) = %+v, %v", id, j, err)
			}
		}()
	}
	wg.Wait()
	var actions []string
	for _, e := range f.hosts[0].Server.Log() {
		actions = append(actions, e.Action[strings.LastIndex(e.Action, "/")+1:])
	}
	// The simulator, like Windows 2012, puts one item in the optimized
	// EnumerateResponse and the rest in a Pull.
	if d := cmp.Diff([]string{"Enumerate", "Pull"}, actions); d != "" {
		t.Errorf("requests (-want +got):\n%s", d)
	}
	// A job not in the snapshot is read with Get: not found.
	if _, err := src.Job(ctx, "{00000000-0000-0000-0000-000000000001}"); !errors.Is(err, bitsprov.ErrNotFound) {
		t.Errorf("unknown job: %v", err)
	}
	// With one job followed, a poll is a plain Get.
	for _, d := range dones[1:] {
		d()
	}
	f.hosts[0].Server.ResetLog()
	if _, err := src.Job(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if l := f.hosts[0].Server.Log(); len(l) != 1 || !strings.HasSuffix(l[0].Action, "/Get") {
		t.Errorf("single job poll: %+v", l)
	}
}

func TestPoolRun(t *testing.T) {
	var hs []Host
	for i := range 20 {
		h, _ := ParseHost(fmt.Sprintf("127.0.0.%d:1", i+1))
		hs = append(hs, h)
	}
	hs = append(hs, hs[3]) // duplicate endpoint, kept once
	cn := &Connector{Base: transport.Config{Auth: transport.AuthBasic, User: "u", Password: "p"}}
	p := NewPool(hs, cn)
	if len(p.Hosts()) != 20 {
		t.Fatalf("%d hosts", len(p.Hosts()))
	}
	var inFlight, peak atomic.Int64
	var seen []string
	var mu sync.Mutex
	errBad := errors.New("bad thing")
	// Hosts hold (5 s in all at most) until three run at once, so that
	// reaching the limit does not hang on how a loaded machine schedules
	// the pool's goroutines; a pool that ran fewer fails after the hold.
	holdUntil := time.Now().Add(5 * time.Second)
	results, sum := p.Run(context.Background(), Options{
		Concurrency: 3,
		HostTimeout: 50 * time.Millisecond,
		Classify: func(err error) int {
			if errors.Is(err, context.DeadlineExceeded) {
				return 4
			}
			return 5
		},
		OnResult: func(r Result) { mu.Lock(); seen = append(seen, r.Host); mu.Unlock() },
	}, func(ctx context.Context, c *Conn) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			old := peak.Load()
			if n <= old || peak.CompareAndSwap(old, n) {
				break
			}
		}
		for peak.Load() < 3 && time.Now().Before(holdUntil) {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(5 * time.Millisecond)
		switch c.Name {
		case "127.0.0.5:1":
			return errBad
		case "127.0.0.7:1":
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
	if peak.Load() != 3 {
		t.Errorf("peak concurrency %d, want 3", peak.Load())
	}
	if sum != (Summary{Hosts: 20, OK: 18, Failed: 2, Code: 5}) {
		t.Errorf("summary %+v", sum)
	}
	if len(seen) != 20 {
		t.Errorf("OnResult called %d times", len(seen))
	}
	if r := results[4]; r.Host != "127.0.0.5:1" || r.Code != 5 || r.Err.Error() != "127.0.0.5:1: bad thing" || !errors.Is(r.Err, errBad) {
		t.Errorf("result 4: %+v", r)
	}
	if r := results[6]; r.Code != 4 || r.Err.Error() != "127.0.0.7:1: context deadline exceeded (context deadline exceeded: the per-host time limit of 50ms passed)" {
		t.Errorf("result 6: %+v %v", r, r.Err)
	}
	if sum.String() != "20 hosts: 18 ok, 2 failed" || sum.Err().Error() != "2 of 20 hosts failed" {
		t.Errorf("summary text %q / %v", sum, sum.Err())
	}

	// A cancelled context starts no host.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := 0
	results, sum = p.Run(ctx, Options{}, func(context.Context, *Conn) error { calls++; return nil })
	if calls != 0 || sum.Failed != 20 || !errors.Is(results[0].Err, context.Canceled) {
		t.Errorf("cancelled run: %d calls, %+v, %v", calls, sum, results[0].Err)
	}
}

func TestConnectorOverrides(t *testing.T) {
	var got []transport.Config
	cn := &Connector{
		Base:  transport.Config{Auth: transport.AuthNTLM, User: "admin", Password: "pw", Encryption: transport.EncryptionAuto},
		HTTPS: true,
		NewTransport: func(c transport.Config) (transport.Transport, error) {
			got = append(got, c)
			return transport.NewBasic(c)
		},
	}
	c, err := cn.Connect(Host{Name: "w1", Address: "10.0.0.1", User: "other", Auth: "basic", Encryption: "never"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "w1" || c.URL != "https://10.0.0.1:5986/wsman" || c.WSMan.Host != "w1" {
		t.Errorf("conn %q %q %q", c.Name, c.URL, c.WSMan.Host)
	}
	want := transport.Config{Auth: transport.AuthBasic, User: "other", Password: "pw", Encryption: transport.EncryptionNever, MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}
	if d := cmp.Diff(want, got[0], cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Proxy" }, cmp.Ignore())); d != "" {
		t.Errorf("config (-want +got):\n%s", d)
	}
	if _, err := cn.Connect(Host{Name: "w2", Address: "w2", Auth: "telnet"}); err == nil || !strings.HasPrefix(err.Error(), "w2:5986: ") {
		t.Errorf("bad auth: %v", err)
	}
}

// TestTransferAsyncThenResume: an --async run leaves its jobs resumed and
// the run open; resuming it without --async waits for the same jobs and
// completes them, creating nothing.
func TestTransferAsyncThenResume(t *testing.T) {
	f := newSimFleet(t, 2)
	p := f.pool(t)
	led, _ := openTestLedger(t)
	dst := t.TempDir()
	specsFor := func(host string) []JobSpec { return testSpecs(f, hostDir(t, dst, host)) }
	fp := Fingerprint("transfer", testSpecs(f, dst))
	run, err := led.BeginRun("transfer", fp, "", false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, sum := p.Run(ctx, Options{}, func(ctx context.Context, c *Conn) error {
		tr := &Transfer{Specs: specsFor(c.Name), Ledger: led, Run: run, Async: true}
		res, err := tr.Host(ctx, c)
		for _, r := range res {
			if r.Step != StepResumed || r.JobID == "" || r.Job == nil || r.Outcome != nil {
				t.Errorf("async %s job %d: %+v", c.Name, r.Index, r)
			}
		}
		return err
	})
	if sum.Failed != 0 {
		t.Fatalf("async run: %+v", sum)
	}
	tr := &Transfer{Specs: testSpecs(f, dst), Ledger: led, Run: run, Async: true}
	if ok, _ := tr.Finish(p.Names()); ok {
		t.Fatal("an async run was marked finished")
	}
	// Every job records how its host was reached, for wait --run.
	entries, err := led.Entries(run.ID)
	if err != nil || len(entries) != 6 {
		t.Fatalf("%d entries, %v", len(entries), err)
	}
	urls := map[string]string{}
	for _, h := range f.hosts {
		urls[strings.TrimSuffix(strings.TrimPrefix(h.URL, "http://"), "/wsman")] = h.URL
	}
	for _, e := range entries {
		if d := cmp.Diff(&HostRecord{URL: urls[e.Host], Account: testUser}, e.Endpoint); d != "" || urls[e.Host] == "" {
			t.Errorf("%s job %d: endpoint (-want +got):\n%s", e.Host, e.Index, d)
		}
	}
	if run, err = led.BeginRun("transfer", fp, "", true); err != nil {
		t.Fatal(err)
	}
	res, sum := runTransfer(ctx, t, p, led, run, specsFor)
	if sum.Failed != 0 {
		t.Fatalf("resumed run: %+v", sum)
	}
	for _, rs := range res {
		for _, r := range rs {
			if r.Step != StepAcknowledged || r.Outcome == nil || r.Outcome.Action != bitsprov.ResultCompleted {
				t.Errorf("%s job %d: %+v", r.Host, r.Index, r)
			}
		}
	}
	if n := f.count(createAction); n != 6 {
		t.Errorf("%d CreateJob calls, want 6", n)
	}
}

// TestTransferResumeVanishedJob: a resumed run finds a recorded job
// (with its JobId) gone from its host, cancelled there by someone else.
// From created (setup unfinished), resumed or left it is recorded
// StepGone with the job as last recorded, a Gone outcome and the reason
// that names the last state, and fails; nothing is created or cancelled.
// An intent (no JobId) is still looked for by its marker and, not found,
// created. A job id a user names (WaitJobs: an entry without a marker)
// that the host does not know stays a not-found error.
func TestTransferResumeVanishedJob(t *testing.T) {
	f, c := oneHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// vanished begins a run in a new ledger (at path) and records in it a
	// job of the run at step with state (and endpoint record rec) that the
	// host no longer has: created there from spec's options, then
	// cancelled. o is the options as created (suspended).
	type vanishedJob struct {
		led   *Ledger
		path  string
		specs []JobSpec
		run   *Run
		o     bitsprov.CreateJobOptions
		id    string
	}
	vanished := func(t *testing.T, step Step, state string, rec *HostRecord) vanishedJob {
		t.Helper()
		v := vanishedJob{specs: testSpecs(f, t.TempDir())[1:2]} // two files
		v.led, v.path = openTestLedger(t)
		var err error
		if v.run, err = v.led.BeginRun("transfer", "fp", "", false); err != nil {
			t.Fatal(err)
		}
		v.o = v.specs[0].Opts
		v.o.Suspended = true
		if v.id, err = c.Bits.CreateJob(ctx, v.o); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Bits.Cancel(ctx, v.id); err != nil {
			t.Fatal(err)
		}
		e := &Entry{RunID: v.run.ID, Host: c.Name, Marker: bitsprov.NewMarker(), JobID: v.id, Step: step, State: state, Request: requestOf(v.specs[0].Opts), Endpoint: rec}
		if err := v.led.Put(e); err != nil {
			t.Fatal(err)
		}
		return v
	}

	for _, tc := range []struct {
		step  Step
		state string
	}{
		{StepCreated, "Suspended"},
		{StepResumed, "Transferring"},
		{StepLeft, "Error"},
	} {
		t.Run(string(tc.step), func(t *testing.T) {
			v := vanished(t, tc.step, tc.state, nil)
			led, specs, run, o, id := v.led, v.specs, v.run, v.o, v.id
			creates, states := f.count(createAction), f.count(stateAction)
			tr := &Transfer{Specs: specs, Ledger: led, Run: run, Policy: bitsprov.Policy{Interval: 10 * time.Millisecond, Timeout: 10 * time.Second}}
			res, err := tr.Host(ctx, c)
			reason := GoneReason + tc.state
			wantErr := "job " + id + ": " + reason
			if err == nil || err.Error() != wantErr || len(res) != 1 {
				t.Fatalf("Host: %v, %+v; want error %q", err, res, wantErr)
			}
			r := res[0]
			// The request set no priority: BITS's default, Normal.
			wantJob := &bitsprov.Job{JobID: id, DisplayName: "two", State: mustState(t, tc.state), FilesTotal: 2, Priority: bitsprov.PriorityNormal,
				Files: []bitsprov.File{{RemoteURL: o.RemoteURL, LocalFile: o.LocalFile}, {RemoteURL: o.ExtraFiles[0].RemoteURL, LocalFile: o.ExtraFiles[0].LocalFile}}}
			if d := cmp.Diff(wantJob, r.Job); d != "" {
				t.Errorf("job (-want +got):\n%s", d)
			}
			if r.Step != StepGone || r.JobID != id || r.Done || r.Outcome == nil || r.Outcome.Action != bitsprov.ResultGone ||
				r.Outcome.Reason != reason || r.Outcome.Final != wantJob.State || r.Outcome.Job != r.Job || r.Err.Error() != wantErr {
				t.Errorf("result %+v, outcome %+v", r, r.Outcome)
			}
			got, err := led.HostEntries(run.ID, c.Name)
			if err != nil {
				t.Fatal(err)
			}
			if g := got[0]; g.Step != StepGone || g.Error != reason || g.State != tc.state || g.JobID != id {
				t.Errorf("ledger entry %+v", g)
			}
			if n := f.count(createAction) - creates; n != 0 {
				t.Errorf("%d CreateJob calls", n)
			}
			if tc.step != StepCreated {
				// Created: the setup's Resume is what found it missing.
				if n := f.count(stateAction) - states; n != 0 {
					t.Errorf("%d SetJobState calls", n)
				}
			}
			// Finished: resuming again does not touch it.
			if ok, err := tr.Finish([]string{c.Name}); !ok || err != nil {
				t.Fatalf("Finish: %v, %v", ok, err)
			}
			before := f.reqs.Load()
			res, _ = tr.Host(ctx, c)
			if r := res[0]; !r.Done || r.Step != StepGone || r.Err == nil || r.Err.Error() != reason || f.reqs.Load() != before {
				t.Errorf("again: %+v, %d requests", r, f.reqs.Load()-before)
			}
			// ... and reports it as the ledger last saw it: the same job
			// as when it was found gone (its files, the priority BITS
			// gave it), not one without files in Foreground.
			if d := cmp.Diff(wantJob, res[0].Job); d != "" {
				t.Errorf("again: job (-want +got):\n%s", d)
			}
		})
	}

	// The ledger cannot record the job gone (here: opened read-only): the
	// result says both that the job is gone and that the ledger did not
	// record it, so the next resume is no surprise.
	t.Run("ledger write fails", func(t *testing.T) {
		v := vanished(t, StepResumed, "Queued", nil)
		specs, run, id := v.specs, v.run, v.id
		v.led.Close()
		ro, err := OpenLedgerReadOnly(v.path)
		if err != nil {
			t.Fatal(err)
		}
		defer ro.Close()
		tr := &Transfer{Specs: specs, Ledger: ro, Run: run, Policy: bitsprov.Policy{Interval: 10 * time.Millisecond, Timeout: 10 * time.Second}}
		_, err = tr.Host(ctx, c)
		want := "job " + id + ": " + GoneReason + "Queued (and the ledger did not record it: "
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Fatalf("Host: %v; want an error starting %q", err, want)
		}
		if got, err := ro.HostEntries(run.ID, c.Name); err != nil || len(got) != 1 || got[0].Step != StepResumed {
			t.Errorf("ledger %+v, %v: want the entry still resumed", got, err)
		}
	})

	// A job looked for another way than the run reached its host: at
	// another address (the name now points elsewhere) or as another user
	// (who may not see the run's jobs). Its absence proves nothing, so it
	// stays as recorded, with a not-found error that says what differs;
	// found the same way as recorded, it is gone.
	t.Run("reached another way", func(t *testing.T) {
		same := c.Record()
		otherURL, otherUser := *same, *same
		otherURL.URL = "http://10.9.9.9:5985/wsman"
		otherUser.Account = `CORP\someone`
		for _, tc := range []struct {
			name string
			rec  *HostRecord
			step Step
			why  string // "" for gone
		}{
			{"same way, resumed", same, StepResumed, ""},
			{"other address, resumed", &otherURL, StepResumed, "the run reached the host at http://10.9.9.9:5985/wsman, and this command at " + c.URL},
			{"other user, created", &otherUser, StepCreated, `the run authenticated as CORP\someone, and this command as ` + testUser + ", who may not see the run's jobs"},
			{"other user, left", &otherUser, StepLeft, `the run authenticated as CORP\someone, and this command as ` + testUser + ", who may not see the run's jobs"},
			{"other user, completing", &otherUser, StepCompleting, `the run authenticated as CORP\someone, and this command as ` + testUser + ", who may not see the run's jobs"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				v := vanished(t, tc.step, "Suspended", tc.rec)
				led, specs, run, id := v.led, v.specs, v.run, v.id
				creates := f.count(createAction)
				tr := &Transfer{Specs: specs, Ledger: led, Run: run, Policy: bitsprov.Policy{Interval: 10 * time.Millisecond, Timeout: 10 * time.Second}}
				res, err := tr.Host(ctx, c)
				got, lerr := led.HostEntries(run.ID, c.Name)
				if lerr != nil || len(res) != 1 || len(got) != 1 {
					t.Fatalf("Host: %+v; ledger %+v, %v", res, got, lerr)
				}
				if tc.why == "" {
					if res[0].Step != StepGone || got[0].Step != StepGone {
						t.Errorf("result %+v, entry %+v: want gone", res[0], got[0])
					}
					return
				}
				if err == nil || !errors.Is(res[0].Err, bitsprov.ErrNotFound) || !strings.HasPrefix(err.Error(), "job "+id+": ") ||
					!strings.HasSuffix(err.Error(), "; not recorded as finished, because "+tc.why+" (look for it as the run did, or drop the run with 'bitsremote ledger prune --unfinished')") {
					t.Errorf("Host: %v; want job %s's not-found error ending %q", err, id, tc.why)
				}
				if res[0].Step != tc.step || got[0].Step != tc.step || got[0].Error != "" {
					t.Errorf("result step %s, entry %+v: want it left at %s", res[0].Step, got[0], tc.step)
				}
				if n := f.count(createAction) - creates; n != 0 {
					t.Errorf("%d CreateJob calls", n)
				}
			})
		}
	})

	t.Run("intent", func(t *testing.T) {
		led, _ := openTestLedger(t)
		specs := testSpecs(f, t.TempDir())[2:]
		run, err := led.BeginRun("transfer", "fp", "", false)
		if err != nil {
			t.Fatal(err)
		}
		if err := led.Put(&Entry{RunID: run.ID, Host: c.Name, Marker: bitsprov.NewMarker(), Step: StepIntent, Request: requestOf(specs[0].Opts)}); err != nil {
			t.Fatal(err)
		}
		creates := f.count(createAction)
		tr := &Transfer{Specs: specs, Ledger: led, Run: run, Policy: bitsprov.Policy{Interval: 10 * time.Millisecond, Timeout: 10 * time.Second}}
		res, err := tr.Host(ctx, c)
		if err != nil || res[0].Step != StepAcknowledged || res[0].Adopted {
			t.Fatalf("Host: %v, %+v", err, res)
		}
		if n := f.count(createAction) - creates; n != 1 {
			t.Errorf("%d CreateJob calls, want 1", n)
		}
	})

	t.Run("id a user named", func(t *testing.T) {
		const id = "{0BADC0DE-0000-4000-8000-000000000001}"
		res := WaitJobs(ctx, c, []string{id}, bitsprov.Policy{Interval: 10 * time.Millisecond, Timeout: 10 * time.Second}, nil, nil)
		r := res[0]
		if !errors.Is(r.Err, bitsprov.ErrNotFound) || r.Step == StepGone || (r.Outcome != nil && r.Outcome.Action == bitsprov.ResultGone) {
			t.Errorf("result %+v, outcome %+v: want a not-found error", r, r.Outcome)
		}
	})
}

func mustState(t *testing.T, s string) bitsprov.State {
	t.Helper()
	st, err := bitsprov.ParseState(s)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

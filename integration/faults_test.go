package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/bitsprov/bitssim"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// faultKinds are the failures injected, each on its own small share of
// requests; together they hit about faultShare of all SOAP requests.
// responseTimeout is the client's wait for a reply; "slow" answers exceed it.
const (
	faultShare      = 0.05
	responseTimeout = time.Second
)

func faultKinds() []struct {
	name string
	inj  wsmantest.Injection
} {
	relatesTo := func(b []byte) []byte {
		return bytes.Replace(b, []byte("<a:RelatesTo>uuid:"), []byte("<a:RelatesTo>uuid:F"), 1)
	}
	return []struct {
		name string
		inj  wsmantest.Injection
	}{
		{"drop", wsmantest.Injection{Kind: wsmantest.InjectDrop}},
		{"500 fault", wsmantest.Injection{Kind: wsmantest.InjectFault}},
		{"500 empty", wsmantest.Injection{Kind: wsmantest.InjectStatus, Status: 500}},
		{"503 Retry-After", wsmantest.Injection{Kind: wsmantest.InjectStatus, Status: 503, RetryAfter: "1"}},
		{"503", wsmantest.Injection{Kind: wsmantest.InjectStatus, Status: 503}},
		{"slow", wsmantest.Injection{Kind: wsmantest.InjectDelay, Delay: responseTimeout + 300*time.Millisecond}},
		{"truncate", wsmantest.Injection{Kind: wsmantest.InjectTruncate}},
		{"garble", wsmantest.Injection{Kind: wsmantest.InjectGarble}},
		{"wrong RelatesTo", wsmantest.Injection{Kind: wsmantest.InjectRewrite, Rewrite: relatesTo}},
	}
}

// truth records, on the host side, what the BITS provider really did:
// every job CreateJob made (with the marker in its Description) and every
// job Complete acknowledged. Replies lost on the wire do not hide anything
// from it.
type truth struct {
	*bitssim.Provider
	mu        sync.Mutex
	created   map[string]string // JobId -> marker
	completed map[string]bool
}

func (t *truth) Invoke(ctx context.Context, r *wsmantest.Request, method string, in *wsman.Instance) (*wsman.Instance, error) {
	out, err := t.Provider.Invoke(ctx, r, method, in)
	if err != nil || out == nil {
		return out, err
	}
	if rv, _ := out.String("ReturnValue"); rv != "0" {
		return out, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch method {
	case "CreateJob":
		id, _ := out.String("JobId")
		desc, _ := in.String("Description")
		_, marker := bitsprov.SplitMarker(desc)
		t.created[id] = marker
	case "SetJobState":
		if s, _ := in.String("JobState"); s == "1" {
			id, _ := r.Selector("JobId")
			t.completed[id] = true
		}
	}
	return out, err
}

// faultHost is one simulated host of the suite.
type faultHost struct {
	host   *bitssim.Host
	truth  *truth
	client *bitsprov.Client
}

// jobSpec is one job the suite drives.
type jobSpec struct {
	host   int
	marker string
	local  string
}

// TestFaultInjection runs 1,000 jobs on 50 simulated hosts (NTLM with
// message encryption, as a default Windows host) while about 5% of the
// SOAP requests fail in every way the wire can fail, and hosts forget
// their NTLM sessions at random. Each job is created, waited for and
// completed with the default policy (complete on Transferred). At the end
// the host-side records must show every expected job created exactly once
// (by marker) and acknowledged, every file in place, and no job left.
func TestFaultInjection(t *testing.T) {
	hosts, perHost := 50, 20
	switch {
	case testing.Short():
		hosts, perHost = 8, 5
	case raceEnabled:
		// The race detector slows XML and RC4 work about tenfold.
		hosts, perHost = 20, 10
	}
	const seed = 20261121
	rng := rand.New(rand.NewPCG(seed, seed))

	files := t.TempDir()
	payload := bytes.Repeat([]byte("bitsremote fault suite\n"), 200)
	if err := os.WriteFile(filepath.Join(files, "f.bin"), payload, 0o644); err != nil {
		t.Fatal(err)
	}
	fileSrv := bitssim.NewFileServer(files)
	t.Cleanup(fileSrv.Close)
	dst := t.TempDir()

	kinds := faultKinds()
	fs := make([]*faultHost, hosts)
	for i := range fs {
		fs[i] = newFaultHost(t, i)
		for k, kind := range kinds {
			fs[i].host.Server.InjectRandom(kind.inj, faultShare/float64(len(kinds)), seed+uint64(i*len(kinds)+k))
		}
	}

	// Hosts "restart" now and then: every connection closes, and with it
	// the NTLM session and its sealing keys.
	stopForget := make(chan struct{})
	var forgets atomic.Int64
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		r := rand.New(rand.NewPCG(seed+1, seed+1))
		tick := time.NewTicker(150 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopForget:
				return
			case <-tick.C:
				fs[r.IntN(len(fs))].host.Server.ForgetSessions()
				forgets.Add(1)
			}
		}
	}()

	var specs []jobSpec
	for h := range hosts {
		if err := os.MkdirAll(filepath.Join(dst, fmt.Sprint(h)), 0o755); err != nil {
			t.Fatal(err)
		}
		for j := range perHost {
			specs = append(specs, jobSpec{
				host:   h,
				marker: fmt.Sprintf("bitsremote:h%02d-j%02d-%016x", h, j, rng.Uint64()),
				local:  filepath.Join(dst, fmt.Sprint(h), fmt.Sprintf("job%02d.bin", j)),
			})
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	ids := make([]string, len(specs))
	errs := make([]error, len(specs))
	sem := make(chan struct{}, 4*hosts)
	var wg sync.WaitGroup
	for i, s := range specs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ids[i], errs[i] = driveJob(ctx, fs[s.host].client, fileSrv.URL+"/f.bin", s)
		}()
	}
	wg.Wait()
	close(stopForget)
	bg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("job %s: %v", specs[i].marker, err)
		}
	}

	// What the wire went through.
	injected := map[string]int{}
	soap := 0
	for _, f := range fs {
		for _, e := range f.host.Server.Log() {
			if e.Action == "" {
				continue
			}
			soap++
			if e.Injected != "" {
				injected[e.Injected]++
			}
		}
		f.host.Server.ClearInjections()
	}
	total := 0
	for _, n := range injected {
		total += n
	}
	t.Logf("%d jobs on %d hosts: %d SOAP requests, %d injected failures (%.1f%%) %v, %d session losses",
		len(specs), hosts, soap, total, 100*float64(total)/float64(soap), injected, forgets.Load())
	if share := float64(total) / float64(soap); share < 0.03 || share > 0.07 {
		t.Errorf("injected failures on %.1f%% of requests, want about 5%%", 100*share)
	}
	for _, k := range []string{"drop", "fault", "status", "delay", "truncate", "garble", "rewrite"} {
		if injected[k] == 0 {
			t.Errorf("no %s failure was injected", k)
		}
	}
	if forgets.Load() == 0 {
		t.Error("no host forgot its sessions")
	}

	// The host-side truth.
	expected := map[string]jobSpec{}
	for _, s := range specs {
		expected[s.marker] = s
	}
	byMarker := map[string][]string{}
	created, acknowledged := 0, 0
	var lost []string
	for h, f := range fs {
		f.truth.mu.Lock()
		for id, marker := range f.truth.created {
			created++
			byMarker[marker] = append(byMarker[marker], fmt.Sprintf("host %d %s", h, id))
			if f.truth.completed[id] {
				acknowledged++
			} else {
				lost = append(lost, fmt.Sprintf("host %d %s (%s)", h, id, marker))
			}
		}
		f.truth.mu.Unlock()
	}
	var duplicates, missing, strangers []string
	for marker, where := range byMarker {
		if _, ok := expected[marker]; !ok {
			strangers = append(strangers, marker)
		}
		if len(where) > 1 {
			sort.Strings(where)
			duplicates = append(duplicates, marker+": "+strings.Join(where, ", "))
		}
	}
	for i, s := range specs {
		if len(byMarker[s.marker]) == 0 {
			missing = append(missing, s.marker)
			continue
		}
		if want := fmt.Sprintf("host %d %s", s.host, ids[i]); byMarker[s.marker][0] != want {
			t.Errorf("job %s: the client reports %s, the host created %v", s.marker, ids[i], byMarker[s.marker])
		}
		got, err := os.ReadFile(s.local)
		if err != nil || !bytes.Equal(got, payload) {
			t.Errorf("job %s: file %s not in place: %v", s.marker, s.local, err)
		}
	}
	t.Logf("jobs expected %d, created on the hosts %d, acknowledged %d, duplicates %d, lost %d, missing %d",
		len(specs), created, acknowledged, len(duplicates), len(lost), len(missing))
	if created != len(specs) || len(byMarker) != len(specs) {
		t.Errorf("jobs expected %d, found %d (%d markers)", len(specs), created, len(byMarker))
	}
	if len(duplicates) != 0 {
		t.Errorf("%d jobs created twice:\n%s", len(duplicates), strings.Join(duplicates, "\n"))
	}
	if len(lost) != 0 {
		t.Errorf("%d created jobs never acknowledged:\n%s", len(lost), strings.Join(lost, "\n"))
	}
	if len(missing) != 0 || len(strangers) != 0 {
		t.Errorf("markers never created: %v; unknown markers: %v", missing, strangers)
	}
	if acknowledged != len(specs) {
		t.Errorf("jobs acknowledged %d, want %d", acknowledged, len(specs))
	}

	// Over the wire, without faults: every queue is empty (an unnoticed
	// duplicate would sit there suspended).
	for h, f := range fs {
		jobs, err := f.client.Jobs(context.Background(), bitsprov.JobFilter{})
		if err != nil || len(jobs) != 0 {
			t.Errorf("host %d: %d jobs left in the queue, %v", h, len(jobs), err)
		}
	}
}

func newFaultHost(t *testing.T, i int) *faultHost {
	t.Helper()
	const user, password = `SIM\admin`, "fault-suite-pw"
	h, err := bitssim.NewHost(bitssim.HostConfig{
		Server: wsmantest.Config{
			Auth:              wsmantest.AuthNTLM,
			Users:             map[string]string{user: password},
			RequireEncryption: true,
			Machine:           fmt.Sprintf("FAULT%02d", i),
		},
		Provider: bitssim.Config{TimeScale: 0.001, Slots: 4},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	tr := &truth{Provider: h.Provider, created: map[string]string{}, completed: map[string]bool{}}
	h.Server.Handle(bitssim.ResourceURI, tr)
	tp, err := transport.New(transport.Config{
		Auth: transport.AuthNTLM, User: user, Password: password,
		ResponseTimeout: responseTimeout,
		Proxy:           func(*http.Request) (*url.URL, error) { return nil, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tp.(interface{ CloseIdleConnections() }).CloseIdleConnections)
	w := wsman.NewClient(h.URL, tp)
	w.Retry = wsman.RetryPolicy{Attempts: 6, Base: 20 * time.Millisecond, Max: 1500 * time.Millisecond}
	return &faultHost{host: h, truth: tr, client: bitsprov.NewClient(w)}
}

// driveJob is what a careful caller (the fleet ledger) does for one job:
// create it at most once, by its marker, then wait for it with the
// default policy (complete on Transferred), starting over on host errors.
func driveJob(ctx context.Context, c *bitsprov.Client, remote string, s jobSpec) (string, error) {
	const patience = 30
	pause := func() error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
			return nil
		}
	}
	opts := bitsprov.CreateJobOptions{
		DisplayName: "fault suite", RemoteURL: remote, LocalFile: s.local,
		Description: "fault suite", Marker: s.marker,
	}
	var id string
	for attempt := 0; id == ""; attempt++ {
		if attempt >= patience {
			return "", fmt.Errorf("could not create the job after %d attempts", attempt)
		}
		if attempt > 0 {
			// The last try may have created the job: look before creating.
			j, err := c.FindJobByMarker(ctx, s.marker)
			if err != nil {
				if perr := pause(); perr != nil {
					return "", fmt.Errorf("find marker: %w (last: %v)", perr, err)
				}
				continue
			}
			if j != nil {
				id = j.JobID
				if err := resume(ctx, c, id, pause); err != nil {
					return id, err
				}
				break
			}
		}
		got, err := c.CreateJob(ctx, opts)
		var se *bitsprov.SetupError
		switch {
		case err == nil:
			id = got
		case errors.As(err, &se):
			id = se.JobID
			if err := resume(ctx, c, id, pause); err != nil {
				return id, err
			}
		default:
			if perr := pause(); perr != nil {
				return "", fmt.Errorf("create: %w (last: %v)", perr, err)
			}
		}
	}
	policy := bitsprov.Policy{Interval: 20 * time.Millisecond, Backoff: 1.5, MaxInterval: 200 * time.Millisecond, Timeout: 40 * time.Second}
	for attempt := 0; ; attempt++ {
		out, err := c.Wait(ctx, id, policy)
		if err == nil {
			switch out.Action {
			case bitsprov.ResultCompleted, bitsprov.ResultGone:
				return id, nil
			}
			return id, fmt.Errorf("wait ended %v: %s", out.Action, out.Reason)
		}
		if errors.Is(err, bitsprov.ErrNotFound) {
			// Our own Complete went through and its reply was lost; the
			// host-side record says whether it did.
			return id, nil
		}
		if attempt >= patience {
			return id, fmt.Errorf("wait: %w", err)
		}
		if perr := pause(); perr != nil {
			return id, fmt.Errorf("wait: %w (last: %v)", perr, err)
		}
	}
}

// resume resumes a job left suspended by a failed setup; Resume of a job
// already running changes nothing, so it is repeated until it answers.
func resume(ctx context.Context, c *bitsprov.Client, id string, pause func() error) error {
	for attempt := 0; ; attempt++ {
		err := c.Resume(ctx, id)
		if err == nil {
			return nil
		}
		if attempt >= 30 {
			return fmt.Errorf("resume: %w", err)
		}
		if perr := pause(); perr != nil {
			return fmt.Errorf("resume: %w (last: %v)", perr, err)
		}
	}
}

package bitsprov_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/bitsprov/bitssim"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// BenchmarkListJobs1000Replay is BenchmarkListJobs1000's listing without
// HTTP: the simulator's replies to one listing are captured once and
// replayed from memory, so the time is only what lies above the
// transport (building envelopes, reading replies, building instances,
// decoding jobs) and its garbage collection. cpu-ms/op is the process CPU
// per listing.
func BenchmarkListJobs1000Replay(b *testing.B) {
	pages := capturedListing(b)
	c := bitsprov.NewClient(wsman.NewClient("http://srv1:5985/wsman", pages.transport()))
	ctx := context.Background()
	list := func() {
		pages.next = 0
		jobs, err := c.Jobs(ctx, bitsprov.JobFilter{})
		if err != nil {
			b.Fatal(err)
		}
		if len(jobs) != listJobs || jobs[0].FilesTotal != 1 || jobs[listJobs-1].DisplayName != fmt.Sprintf("fleet update %04d", listJobs-1) {
			b.Fatalf("listing holds %d jobs, want %d", len(jobs), listJobs)
		}
	}
	list()
	b.ReportAllocs()
	n := 0
	before := cpuTime(b)
	for b.Loop() {
		list()
		n++
	}
	b.ReportMetric(float64(cpuTime(b)-before)/float64(time.Millisecond)/float64(n), "cpu-ms/op")
	b.ReportMetric(float64(len(pages.bodies)), "round-trips/op")
}

// listReplay answers the requests of one listing, in order, with the
// captured replies, each with its a:RelatesTo set to the request's
// MessageID (both are uuid: and 36 characters, so it is patched in place
// in a fresh copy).
type listReplay struct {
	bodies  [][]byte
	related []int // offset of the RelatesTo text in each body
	next    int
}

var (
	captureOnce sync.Once
	captured    *listReplay
	captureErr  error
)

// capturedListing lists listJobs jobs once from an in-process simulator
// over Basic and keeps the replies (once per test binary).
func capturedListing(tb testing.TB) *listReplay {
	tb.Helper()
	captureOnce.Do(func() {
		captureErr = fmt.Errorf("capturing the listing failed in an earlier benchmark")
		captured, captureErr = captureListing(tb)
	})
	if captureErr != nil {
		tb.Fatal(captureErr)
	}
	return &listReplay{bodies: captured.bodies, related: captured.related}
}

func captureListing(tb testing.TB) (*listReplay, error) {
	cfg := wsmantest.Config{Auth: wsmantest.AuthBasic, Users: map[string]string{e2eUser: e2ePassword}, Machine: e2eMachine}
	h, err := bitssim.NewHost(bitssim.HostConfig{Server: cfg, Provider: bitssim.Config{TimeScale: e2eTimeScale}})
	if err != nil {
		return nil, err
	}
	defer h.Close()
	fillQueue(tb, h.Provider)
	tr, err := transport.New(transport.Config{Auth: transport.AuthBasic, User: e2eUser, Password: e2ePassword})
	if err != nil {
		return nil, err
	}
	if c, ok := tr.(interface{ CloseIdleConnections() }); ok {
		defer c.CloseIdleConnections()
	}
	r := &listReplay{}
	rec := transport.Func(func(ctx context.Context, req *transport.Request) (*transport.Response, error) {
		resp, err := tr.RoundTrip(ctx, req)
		if err != nil {
			return nil, err
		}
		id := messageID(req.Body)
		k := bytes.Index(resp.Body, []byte(">"+id+"</"))
		if k < 0 {
			return nil, fmt.Errorf("reply does not relate to %s", id)
		}
		r.bodies = append(r.bodies, bytes.Clone(resp.Body))
		r.related = append(r.related, k+1)
		return resp, nil
	})
	jobs, err := bitsprov.NewClient(wsman.NewClient(h.URL, rec)).Jobs(context.Background(), bitsprov.JobFilter{})
	if err != nil {
		return nil, err
	}
	if len(jobs) != listJobs {
		return nil, fmt.Errorf("captured %d jobs, want %d", len(jobs), listJobs)
	}
	return r, nil
}

// messageID is the text of a request's a:MessageID.
func messageID(env []byte) string {
	const open = "<a:MessageID>"
	i := bytes.Index(env, []byte(open))
	if i < 0 {
		return ""
	}
	j := bytes.Index(env[i:], []byte("</"))
	return string(env[i+len(open) : i+j])
}

func (r *listReplay) transport() transport.Transport {
	return transport.Func(func(ctx context.Context, req *transport.Request) (*transport.Response, error) {
		if r.next >= len(r.bodies) {
			return nil, fmt.Errorf("request %d is beyond the %d captured", r.next+1, len(r.bodies))
		}
		src, at := r.bodies[r.next], r.related[r.next]
		r.next++
		id := messageID(req.Body)
		body := bytes.Clone(src)
		if len(id) != 41 || copy(body[at:at+41], id) != 41 {
			return nil, fmt.Errorf("MessageID %q is not a uuid: URN", id)
		}
		return &transport.Response{StatusCode: 200, ContentType: "application/soap+xml;charset=UTF-8", Body: body}, nil
	})
}

package bitsprov_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/bitsprov/bitssim"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// Recording. The replay tests answer from fixtures/soap/bitsprov; with
// BITSREMOTE_RECORD=1 the same scenarios run against a live simulated host
// (bitssim.Host) through a transport.Recorder and rewrite the fixtures:
//
//	BITSREMOTE_RECORD=1 go test ./bitsprov -run TestReplay
//
// Everything a request carries must be the same on every recording, or
// the fixtures (and the replay) would change each time: the file server
// that jobs download from listens on a fixed loopback port (filesAddr, or
// BITSREMOTE_RECORD_FILES_ADDR) because its URL is in CreateJob's
// RemoteUrl (a port below the ephemeral range, so no outgoing connection
// holds it). LocalFile is a Windows path, which the simulator maps under a
// temporary LocalRoot. The simulator's clock is stopped at simNow so that job
// times are fixed too. Every CreateJob passes a fixed marker
// (replayMarker), which its Description carries. JobIds are random GUIDs:
// a re-recording changes them, and the replayer checks that the client
// sends back the ones it was given.
const (
	recordEnv      = "BITSREMOTE_RECORD"
	filesAddrEnv   = "BITSREMOTE_RECORD_FILES_ADDR"
	filesAddr      = "127.0.0.1:25988"
	filesURL       = "http://" + filesAddr
	recordUser     = "admin"
	recordPassword = `Rec0rd&<pw>"'`
	// jobPassword and proxyPassword are sent with SetCredentials; they must
	// not reach a fixture either.
	jobPassword   = `J0b&<secret>"'`
	proxyPassword = `Pr0xy-secret!`

	replayHost     = "SIMHOST"
	replayEndpoint = "http://simhost:5985/wsman"
)

// simNow is the simulator's stopped clock: every job is created and
// modified at this instant.
var simNow = time.Date(2026, 11, 21, 9, 30, 0, 0, time.UTC)

// downloadsDir is where the Windows directory C:\Users\Public\Downloads
// of the simulated host lives while recording.
var downloadsDir string

// fixtureDir is fixtures/soap at the repository root.
var fixtureDir = filepath.Join("..", "fixtures", "soap")

// secrets are what the recorder redacts and the replayer expects redacted.
var secrets = []string{recordPassword, jobPassword, proxyPassword}

func recording() bool { return os.Getenv(recordEnv) == "1" }

// stoppedClock reads simNow forever; durations still pass in real time
// (scaled by the provider's TimeScale).
type stoppedClock struct{}

func (stoppedClock) Now() time.Time                         { return simNow }
func (stoppedClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// payload is what the file server serves as /payload.bin.
var payload = bytes.Repeat([]byte("0123456789abcdef"), 4096)

// hostOptions adjust the recording host.
type hostOptions struct {
	// setup runs once the host is up, e.g. to serve another class.
	setup func(t *testing.T, h *bitssim.Host)
	// wrap, when set, goes between the Recorder and the host's transport,
	// so that what it does to an exchange is recorded (and replayed).
	wrap func(transport.Transport) transport.Transport
}

// replayClient returns a BITS client for the fixture name: over a
// Recorder in front of a fresh simulated host when recording, over a
// Replayer otherwise, with a flowSpy in front of either. check runs at the
// end of the scenario.
func replayClient(t *testing.T, name string, opts hostOptions) (c *bitsprov.Client, spy *flowSpy, check func()) {
	t.Helper()
	spy = &flowSpy{}
	if !recording() {
		rp, err := transport.NewReplayer(fixtureDir, name, secrets...)
		if err != nil {
			t.Fatalf("load fixture (record it with %s=1): %v", recordEnv, err)
		}
		spy.next = rp
		w := wsman.NewClient(replayEndpoint, spy)
		w.Host = replayHost
		return bitsprov.NewClient(w), spy, func() {
			t.Helper()
			if err := rp.Verify(); err != nil {
				t.Error(err)
			}
		}
	}
	startFileServer(t)
	root := t.TempDir()
	downloadsDir = filepath.Join(root, "C", "Users", "Public", "Downloads")
	if err := os.MkdirAll(downloadsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	h, err := bitssim.NewHost(bitssim.HostConfig{
		Server:   wsmantest.Config{Users: map[string]string{recordUser: recordPassword}, Machine: replayHost},
		Provider: bitssim.Config{TimeScale: 0.001, Clock: stoppedClock{}, LocalRoot: root},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	if opts.setup != nil {
		opts.setup(t, h)
	}
	tr, err := transport.NewBasic(transport.Config{Auth: transport.AuthBasic, User: recordUser, Password: recordPassword})
	if err != nil {
		t.Fatal(err)
	}
	if ic, ok := tr.(interface{ CloseIdleConnections() }); ok {
		t.Cleanup(ic.CloseIdleConnections)
	}
	if opts.wrap != nil {
		tr = opts.wrap(tr)
	}
	rec, err := transport.NewRecorder(tr, fixtureDir, name, secrets...)
	if err != nil {
		t.Fatal(err)
	}
	spy.next = rec
	w := wsman.NewClient(h.URL, spy)
	w.Host = replayHost
	return bitsprov.NewClient(w), spy, func() {
		t.Helper()
		if err := rec.Err(); err != nil {
			t.Error(err)
		}
	}
}

// startFileServer serves /payload.bin (and 404 for anything else) on the
// fixed files address until the test ends.
func startFileServer(t *testing.T) {
	t.Helper()
	addr := os.Getenv(filesAddrEnv)
	if addr == "" {
		addr = filesAddr
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("file server on %s (set %s to another port): %v", addr, filesAddrEnv, err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/payload.bin" {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "payload.bin", simNow, bytes.NewReader(payload))
	}))
	_ = srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
}

// pause waits between polls while recording; a replay answers at once.
func pause() {
	if recording() {
		time.Sleep(5 * time.Millisecond)
	}
}

// flowSpy notes each exchange as the local name of the request's Action
// (for methods, the method name) and, when the reply holds jobs, how many
// ("Enumerate:1"), or that it was a fault ("Get fault"). It shows the
// sequence of calls a client method makes.
type flowSpy struct {
	next transport.Transport
	mu   sync.Mutex
	flow []string
}

var (
	actionRE = regexp.MustCompile(`<a:Action[^>]*>([^<]*)</a:Action>`)
	jobRE    = regexp.MustCompile(`<p:BitsClientJob[ >]`)
)

func (s *flowSpy) RoundTrip(ctx context.Context, req *transport.Request) (*transport.Response, error) {
	step := "?"
	if m := actionRE.FindSubmatch(req.Body); m != nil {
		a := string(m[1])
		step = a[strings.LastIndexByte(a, '/')+1:]
	}
	resp, err := s.next.RoundTrip(ctx, req)
	switch {
	case err != nil:
		step += " error"
	case bytes.Contains(resp.Body, []byte("<s:Fault>")):
		step += " fault"
	default:
		if n := len(jobRE.FindAll(resp.Body, -1)); n > 0 && !strings.HasPrefix(step, "Get") && !strings.HasPrefix(step, "Put") {
			step += fmt.Sprintf(":%d", n)
		}
	}
	s.mu.Lock()
	s.flow = append(s.flow, step)
	s.mu.Unlock()
	return resp, err
}

// Flow returns the exchanges so far.
func (s *flowSpy) Flow() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.flow)
}

// loseReply returns a wrap that loses the reply to the n-th request whose
// Action ends in "/"+method: the request reaches the host, which carries
// it out, and the client gets a connection reset instead of the answer
// (as when a load balancer or the network drops the connection). The
// recording keeps the request and the error text; the replay returns that
// error, which leaves the outcome as open as the reset does.
func loseReply(method string, n int) func(transport.Transport) transport.Transport {
	return func(next transport.Transport) transport.Transport {
		var mu sync.Mutex
		seen := 0
		return transport.Func(func(ctx context.Context, req *transport.Request) (*transport.Response, error) {
			resp, err := next.RoundTrip(ctx, req)
			m := actionRE.FindSubmatch(req.Body)
			if err != nil || m == nil || !strings.HasSuffix(string(m[1]), "/"+method) {
				return resp, err
			}
			mu.Lock()
			seen++
			lose := seen == n
			mu.Unlock()
			if !lose {
				return resp, nil
			}
			return nil, fmt.Errorf("read tcp: reply to %s lost after the host carried it out: %w", method, syscall.ECONNRESET)
		})
	}
}

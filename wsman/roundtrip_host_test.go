package wsman_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// roundTripURI is the class the round-trip benchmarks Get: one small
// instance, so that what is measured is the envelope, the transport and
// (for NTLM) the sealing rather than a large payload.
const roundTripURI = wsman.ResourceWMI + "/root/test/RoundTripJob"

const (
	roundTripUser = "admin"
	roundTripPass = "Rt-S3cret!pw"
	roundTripKey  = "{9D5C4B47-E79E-4090-BC3B-552578D0EC8C}"
)

// roundTripHostEnv makes the test binary run TestRoundTripHostProcess as
// the benchmarks' host instead of skipping it.
const roundTripHostEnv = "WSMAN_ROUNDTRIP_HOST"

// roundTripJob answers every Get with the same BitsClientJob-like
// instance of ten properties (text, a nil, a datetime); the other
// operations are not served.
type roundTripJob struct{ in *wsman.Instance }

func newRoundTripJob() *roundTripJob {
	in := wsman.NewInstance(roundTripURI)
	in.Set("JobId", roundTripKey)
	in.Set("DisplayName", "fleet update 0042")
	in.Set("Description", "Monthly rollup staged by bitsremote")
	in.Set("JobState", "2")
	in.Set("Priority", "2")
	in.Set("BytesTotal", "18446744073709551615")
	in.Set("BytesTransferred", "0")
	in.Set("FilesTotal", "1")
	in.SetNil("ErrorDescription")
	in.SetDatetime("CreationTime", time.Date(2013, 4, 15, 16, 28, 43, 488171000, time.UTC))
	return &roundTripJob{in: in}
}

func (p *roundTripJob) Keys() []string { return []string{"JobId"} }

func (p *roundTripJob) Get(_ context.Context, r *wsmantest.Request) (*wsman.Instance, error) {
	if id, _ := r.Selector("JobId"); id != roundTripKey {
		return nil, wsmantest.FaultNotFound("")
	}
	return p.in, nil
}

func (p *roundTripJob) Put(_ context.Context, r *wsmantest.Request, _ *wsman.Instance) (*wsman.Instance, error) {
	return nil, wsmantest.FaultActionNotSupported(r.Action)
}

func (p *roundTripJob) Invoke(_ context.Context, r *wsmantest.Request, _ string, _ *wsman.Instance) (*wsman.Instance, error) {
	return nil, wsmantest.FaultActionNotSupported(r.Action)
}

func (p *roundTripJob) Enumerate(context.Context, *wsmantest.EnumerateRequest) ([]*wsman.Instance, error) {
	return []*wsman.Instance{p.in}, nil
}

// newRoundTripServer starts a host offering Basic and NTLM (sealed or
// not, as the client chooses) and serving roundTripJob.
func newRoundTripServer() (*wsmantest.Server, error) {
	s, err := wsmantest.New(wsmantest.Config{
		Auth:  wsmantest.AuthBasic | wsmantest.AuthNTLM,
		Users: map[string]string{roundTripUser: roundTripPass},
	})
	if err != nil {
		return nil, err
	}
	s.Handle(roundTripURI, newRoundTripJob())
	s.Start()
	return s, nil
}

// roundTripHost is a running host, in this process or in a child.
type roundTripHost struct {
	url string
	// handshakes returns how many NTLM handshakes and TCP connections the
	// host has accepted so far.
	handshakes func(testing.TB) (ntlm, conns int)
}

// startRoundTripHost runs the host in this process until tb ends.
func startRoundTripHost(tb testing.TB) roundTripHost {
	tb.Helper()
	s, err := newRoundTripServer()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return roundTripHost{url: s.URL, handshakes: func(testing.TB) (int, int) {
		return s.NTLMHandshakes(), s.Connections()
	}}
}

// startRoundTripHostProcess runs the host in a child process (this test
// binary running TestRoundTripHostProcess), so that getrusage(RUSAGE_SELF)
// in the benchmark counts the client alone. The child answers a "stats"
// line on its stdin with its counters and exits at stdin EOF, which
// b.Cleanup causes (or the kernel, if this process dies first); a child
// still alive 10 s later is killed.
func startRoundTripHostProcess(tb testing.TB) roundTripHost {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRoundTripHostProcess$", "-test.count=1", "-test.timeout=0")
	cmd.Env = append(os.Environ(), roundTripHostEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	lines := make(chan string, 16)
	go func() {
		defer close(done)
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "roundtrip-") {
				lines <- l
			}
		}
		_ = cmd.Wait()
	}()
	tb.Cleanup(func() {
		stdin.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	next := func(tb testing.TB, prefix string) string {
		select {
		case l, ok := <-lines:
			if !ok || !strings.HasPrefix(l, prefix) {
				tb.Fatalf("the round-trip host process said %q, want a %q line", l, prefix)
			}
			return strings.TrimPrefix(l, prefix)
		case <-time.After(60 * time.Second):
			tb.Fatalf("the round-trip host process said nothing in 60 s (want a %q line)", prefix)
		}
		return ""
	}
	url := next(tb, "roundtrip-host ")
	return roundTripHost{url: url, handshakes: func(tb testing.TB) (int, int) {
		tb.Helper()
		if _, err := io.WriteString(stdin, "stats\n"); err != nil {
			tb.Fatalf("asking the host process for its counters: %v", err)
		}
		var ntlm, conns int
		l := next(tb, "roundtrip-stats ")
		if _, err := fmt.Sscanf(l, "%d %d", &ntlm, &conns); err != nil {
			tb.Fatalf("host process counters %q: %v", l, err)
		}
		return ntlm, conns
	}}
}

// TestRoundTripHostProcess is the round-trip benchmarks' host process; it
// skips unless started by them.
func TestRoundTripHostProcess(t *testing.T) {
	if os.Getenv(roundTripHostEnv) != "1" {
		t.Skip("runs only as the round-trip benchmarks' host process")
	}
	s, err := newRoundTripServer()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fmt.Printf("roundtrip-host %s\n", s.URL)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() { // until the benchmark closes stdin
		if sc.Text() == "stats" {
			fmt.Printf("roundtrip-stats %d %d\n", s.NTLMHandshakes(), s.Connections())
		}
	}
}

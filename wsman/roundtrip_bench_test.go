package wsman_test

import (
	"context"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
)

// The round-trip benchmarks time one Get through the real client and
// transport over loopback with keep-alive, against a wsmantest host
// serving one ten-property instance. Each has two variants:
//
//   - inproc: the host runs in this process. Simple, but the CPU time,
//     B/op and allocs/op are the client's and the host's together; the
//     CPU time is reported as process-cpu-µs/op.
//   - child: the host runs in a child process (this test binary running
//     TestRoundTripHostProcess), so getrusage(RUSAGE_SELF) around the loop
//     and B/op and allocs/op count the client alone: envelope, sealing,
//     HTTP, parsing and GC. The CPU time is reported as
//     client-cpu-µs/op.
//
// ns/op is wall time per Get, waiting for the host included.
//
// The NTLM variants check that the timed Gets reused the authenticated
// connection (see checkOneHandshake), so a change that silently
// re-authenticated per request would fail rather than look slow.

// BenchmarkGetRoundTripBasic is one Get with HTTP Basic.
func BenchmarkGetRoundTripBasic(b *testing.B) { benchRoundTrip(b, roundTripBasic) }

// BenchmarkGetRoundTripNTLM is one Get on an NTLM-authenticated
// connection without message encryption.
func BenchmarkGetRoundTripNTLM(b *testing.B) { benchRoundTrip(b, roundTripNTLM) }

// BenchmarkGetRoundTripNTLMEncrypted is one Get sealed with the NTLM
// session (MS-WSMV HTTP message encryption). The goal (issue "NTLM
// message encryption") is at most 30% more client CPU per Get than
// BenchmarkGetRoundTripNTLM; BenchmarkEncryptionOverhead measures it.
func BenchmarkGetRoundTripNTLMEncrypted(b *testing.B) { benchRoundTrip(b, roundTripSealed) }

// BenchmarkEncryptionOverhead measures the client CPU of a plain NTLM
// Get and of a sealed one against the same child-process host, in
// alternating slices of the b.N Gets of each (so that a burst of
// machine noise falls on both), and reports encryption-overhead-% =
// (sealed − plain) / plain × 100. The goal is at most 30. ns/op is the
// wall time of one plain plus one sealed Get.
func BenchmarkEncryptionOverhead(b *testing.B) {
	host := startRoundTripHostProcess(b)
	plain := newRoundTripClient(b, host.url, roundTripNTLM)
	sealed := newRoundTripClient(b, host.url, roundTripSealed)
	ctx := context.Background()
	opts := roundTripOpts()
	get := func(c *wsman.Client) {
		if _, err := c.Get(ctx, roundTripURI, opts); err != nil {
			b.Fatal(err)
		}
	}
	warmUp(b, plain)
	warmUp(b, sealed)
	ntlm0, conns0 := host.handshakes(b)

	const slices = 10
	var cpu, allocs [2]float64
	clients := [2]*wsman.Client{plain, sealed}
	b.ReportAllocs()
	b.ResetTimer()
	for s := range slices {
		n := b.N / slices
		if s < b.N%slices {
			n++
		}
		for i := range 2 {
			k := (i + s) % 2 // which one goes first alternates too
			c0, m0 := cpuTime(b), mallocs()
			for range n {
				get(clients[k])
			}
			cpu[k] += float64(cpuTime(b) - c0)
			allocs[k] += float64(mallocs() - m0)
		}
	}
	b.StopTimer()
	checkOneHandshake(b, host, ntlm0, conns0)
	n := float64(b.N)
	b.ReportMetric(cpu[0]/n/float64(time.Microsecond), "ntlm-client-cpu-µs/op")
	b.ReportMetric(cpu[1]/n/float64(time.Microsecond), "sealed-client-cpu-µs/op")
	b.ReportMetric(allocs[0]/n, "ntlm-allocs/op")
	b.ReportMetric(allocs[1]/n, "sealed-allocs/op")
	if cpu[0] > 0 {
		b.ReportMetric((cpu[1]-cpu[0])/cpu[0]*100, "encryption-overhead-%")
	}
}

// roundTripAuth is how a benchmark's client authenticates.
type roundTripAuth int

const (
	roundTripBasic roundTripAuth = iota
	roundTripNTLM
	roundTripSealed
)

func benchRoundTrip(b *testing.B, auth roundTripAuth) {
	b.Run("inproc", func(b *testing.B) {
		measureRoundTrip(b, startRoundTripHost(b), auth, "process-cpu-µs/op")
	})
	b.Run("child", func(b *testing.B) {
		measureRoundTrip(b, startRoundTripHostProcess(b), auth, "client-cpu-µs/op")
	})
}

func measureRoundTrip(b *testing.B, host roundTripHost, auth roundTripAuth, metric string) {
	c := newRoundTripClient(b, host.url, auth)
	ctx := context.Background()
	opts := roundTripOpts()
	warmUp(b, c)
	ntlm0, conns0 := host.handshakes(b)
	b.ReportAllocs()
	before := cpuTime(b)
	n := 0
	for b.Loop() {
		if _, err := c.Get(ctx, roundTripURI, opts); err != nil {
			b.Fatal(err)
		}
		n++
	}
	cpu := cpuTime(b) - before
	b.ReportMetric(float64(cpu)/float64(time.Microsecond)/float64(n), metric)
	if auth != roundTripBasic {
		checkOneHandshake(b, host, ntlm0, conns0)
	}
}

// warmUp makes the first Get outside the timing (the NTLM handshake, a
// new connection) and checks that the answer is the instance served.
func warmUp(b *testing.B, c *wsman.Client) {
	b.Helper()
	in, err := c.Get(context.Background(), roundTripURI, roundTripOpts())
	if err != nil {
		b.Fatal(err)
	}
	if id, err := in.String("JobId"); err != nil || id != roundTripKey || len(in.Props) != 10 {
		b.Fatalf("Get returned JobId %q (%v) and %d properties, want %s and 10", id, err, len(in.Props), roundTripKey)
	}
}

// checkOneHandshake reports the NTLM handshakes the timed Gets needed
// (handshakes metric) and fails the benchmark if more than one plus 1%
// of them did: keep-alive and one handshake per connection must hold. A rare
// one is allowed because net/http itself drops a connection whose
// request write it has not seen finish 50 ms after the reply
// (maxWriteWaitBeforeConnReuse), which happens on a loaded machine or
// under -memprofilerate=1; the transport then authenticates a new
// connection, as it must.
func checkOneHandshake(b *testing.B, host roundTripHost, ntlm0, conns0 int) {
	b.Helper()
	ntlm, conns := host.handshakes(b)
	b.ReportMetric(float64(ntlm-ntlm0), "handshakes")
	allowed := 1 + b.N/100 // each may cost two connections: the 401 and the new handshake's
	if ntlm-ntlm0 > allowed || conns-conns0 > 2*allowed {
		b.Errorf("the %d timed Gets made %d NTLM handshakes on %d new connections, want at most %d and %d (keep-alive)", b.N, ntlm-ntlm0, conns-conns0, allowed, 2*allowed)
	}
}

func newRoundTripClient(b testing.TB, url string, auth roundTripAuth) *wsman.Client {
	b.Helper()
	cfg := transport.Config{User: roundTripUser, Password: roundTripPass}
	switch auth {
	case roundTripBasic:
		cfg.Auth = transport.AuthBasic
	case roundTripNTLM:
		cfg.Auth, cfg.Encryption = transport.AuthNTLM, transport.EncryptionNever
	case roundTripSealed:
		cfg.Auth, cfg.Encryption = transport.AuthNTLM, transport.EncryptionAlways
	}
	tr, err := transport.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if ic, ok := tr.(interface{ CloseIdleConnections() }); ok {
		b.Cleanup(ic.CloseIdleConnections)
	}
	c := wsman.NewClient(url, tr)
	// A retry would hide a failure as a slow Get.
	c.Retry = wsman.NoRetry
	return c
}

func roundTripOpts() wsman.Options {
	return wsman.Options{Selectors: []wsman.Selector{{Name: "JobId", Value: roundTripKey}}}
}

// cpuTime is the user plus system CPU time this process has used,
// garbage collection included.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// mallocs is how many heap objects this process has allocated.
func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

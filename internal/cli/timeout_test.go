package cli

import (
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestTimeoutIsTheWholeWait: --timeout bounds connecting and each reply,
// with nothing added; the host is asked (OperationTimeout) to answer a
// little sooner with a fault of its own.
func TestTimeoutIsTheWholeWait(t *testing.T) {
	for _, tc := range []struct {
		timeout, op time.Duration
	}{
		{500 * time.Millisecond, 400 * time.Millisecond},
		{10 * time.Second, 8 * time.Second},
		{60 * time.Second, 55 * time.Second},
	} {
		t.Run(tc.timeout.String(), func(t *testing.T) {
			f := NewFactory()
			f.Conn = ConnOptions{Auth: "ntlm", User: "admin", Encryption: "auto", Timeout: tc.timeout, Concurrency: 1, Retries: 3}
			cfg, err := f.baseConfig()
			if err != nil {
				t.Fatal(err)
			}
			got := []time.Duration{cfg.DialTimeout, cfg.ResponseTimeout, f.connector(cfg).OperationTimeout}
			if diff := cmp.Diff([]time.Duration{tc.timeout, tc.timeout, tc.op}, got); diff != "" {
				t.Errorf("dial, response, operation timeouts (-want +got):\n%s", diff)
			}
			icfg, err := f.identifyConfig()
			if err != nil {
				t.Fatal(err)
			}
			if icfg.DialTimeout != tc.timeout || icfg.ResponseTimeout != tc.timeout {
				t.Errorf("identify: dial %v, response %v; want %v", icfg.DialTimeout, icfg.ResponseTimeout, tc.timeout)
			}
		})
	}
}

// TestSilentHostAttempts: a host that accepts connections and never
// answers costs --retries+1 attempts of --timeout each for list, not
// (retries+1) squared.
func TestSilentHostAttempts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Accepted connections stay open (the host stays silent) until the
	// test ends.
	accepted := make(chan net.Conn, 64)
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	defer func() {
		ln.Close()
		for c := range accepted {
			c.Close()
		}
	}()
	r := run(t, withPassword(), "list", "-H", ln.Addr().String(), "-u", testUser, "--timeout", "200ms", "--retries", "1")
	// Count the client's connections up to a marker connection of ours:
	// the accept queue is first in, first out, so every connection the
	// client made is counted, even those not yet accepted when it gave up.
	marker, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer marker.Close()
	var n int
	timeout := time.After(10 * time.Second)
count:
	for {
		select {
		case c := <-accepted:
			defer c.Close()
			if c.RemoteAddr().String() == marker.LocalAddr().String() {
				break count
			}
			n++
		case <-timeout:
			t.Fatalf("the marker connection was not accepted in 10 s (%d before it)", n)
		}
	}
	if r.code != ExitConnection {
		t.Errorf("exit %d, want 4: %s", r.code, r.stderr)
	}
	if n != 2 {
		t.Errorf("%d connections, want 2 (--retries 1)", n)
	}
}

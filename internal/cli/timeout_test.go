package cli

import (
	"net"
	"sync/atomic"
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
	defer ln.Close()
	var conns atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			held = append(held, c)
		}
	}()
	r := run(t, withPassword(), "list", "-H", ln.Addr().String(), "-u", testUser, "--timeout", "200ms", "--retries", "1")
	ln.Close()
	<-done
	if r.code != ExitConnection {
		t.Errorf("exit %d, want 4: %s", r.code, r.stderr)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (--retries 1)", n)
	}
}

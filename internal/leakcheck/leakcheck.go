// Package leakcheck fails a test binary whose goroutines outlive its tests.
// A package's TestMain calls Main with a marker naming the code whose
// goroutines must be gone (a server, a simulated host, a transfer), so
// that a Close that forgets to stop something is caught where it happens.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// grace is how long goroutines get to finish after the tests: ending a
// connection's goroutines takes milliseconds, but a loaded machine (CI:
// 2 cores, every package's tests at once, the race detector) may not run
// them for a while. A leaked goroutine never ends, so waiting longer
// costs only a failing run.
const grace = 10 * time.Second

// stdlibLeaks are goroutines of the standard library that outlive a test
// only when it leaks: a server it did not close, a net/http client's
// kept-alive connection it did not close. Their stacks hold no frame of
// ours while they wait, so the marker alone misses them.
var stdlibLeaks = []string{
	"net/http.(*Server).Serve",
	"net/http.(*conn).serve",
	"net/http.(*persistConn).readLoop",
	"net/http.(*persistConn).writeLoop",
}

// Main runs the tests and, when they pass, exits 1 if goroutines whose
// stacks contain marker, or that serve or hold net/http connections
// (stdlibLeaks), are still running after the grace period.
func Main(m *testing.M, marker string) {
	code := m.Run()
	if code == 0 {
		if leaked := Leaked(marker); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines leaked after the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// Leaked returns the stacks of goroutines running code that contains
// marker, or standard-library code that only a leak leaves running
// (stdlibLeaks), after giving them the grace period to finish; "" when there
// are none.
func Leaked(marker string) string {
	deadline := time.Now().Add(grace)
	for {
		leaked := running(marker)
		if len(leaked) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// running returns the stacks of the goroutines Leaked looks for that run
// now.
func running(marker string) []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var leaked []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if (strings.Contains(g, marker) || stdlibLeak(g)) && !strings.Contains(g, "TestMain") && !strings.Contains(g, "leakcheck.") {
			leaked = append(leaked, g)
		}
	}
	return leaked
}

// stdlibLeak reports whether the goroutine stack g is one of stdlibLeaks.
func stdlibLeak(g string) bool {
	for _, f := range stdlibLeaks {
		if strings.Contains(g, f) {
			return true
		}
	}
	return false
}

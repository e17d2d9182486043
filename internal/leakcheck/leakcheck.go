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

// Main runs the tests and, when they pass, exits 1 if goroutines whose
// stacks contain marker are still running after about a second.
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
// marker, after giving them a second to finish; "" when there are none.
func Leaked(marker string) string {
	var stacks string
	for range 50 {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, marker) && !strings.Contains(g, "TestMain") && !strings.Contains(g, "leakcheck.") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return ""
		}
		stacks = strings.Join(leaked, "\n\n")
		time.Sleep(20 * time.Millisecond)
	}
	return stacks
}

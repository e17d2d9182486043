package cli

import (
	"fmt"
	"runtime"
	"testing"
)

func TestProcsFor(t *testing.T) {
	for _, tc := range []struct{ hosts, concurrency, procs, want int }{
		{1, 32, 8, 1},   // one host: one exchange at a time
		{3, 32, 8, 3},   // a P per host worked on at once
		{100, 32, 8, 8}, // no more than there are
		{100, 2, 8, 2},  // no more hosts at once than --concurrency
		{0, 32, 8, 1},   // never below one
		{5, 32, 1, 1},
	} {
		if got := procsFor(tc.hosts, tc.concurrency, tc.procs); got != tc.want {
			t.Errorf("procsFor(%d hosts, concurrency %d, %d procs) = %d, want %d", tc.hosts, tc.concurrency, tc.procs, got, tc.want)
		}
	}
}

// TestLimitProcs: the process runs on one P for one host, and a GOMAXPROCS
// from the environment is kept.
func TestLimitProcs(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(procs) })
	t.Setenv("GOMAXPROCS", "")
	if got, now := LimitProcs(1, 32), runtime.GOMAXPROCS(0); got != 1 || now != 1 {
		t.Errorf("LimitProcs(1, 32) = %d with GOMAXPROCS %d after, want 1 and 1", got, now)
	}
	runtime.GOMAXPROCS(procs)
	t.Setenv("GOMAXPROCS", fmt.Sprint(procs))
	if got := LimitProcs(1, 32); got != procs || runtime.GOMAXPROCS(0) != procs {
		t.Errorf("GOMAXPROCS %d after LimitProcs with GOMAXPROCS=%d set, want it kept", got, procs)
	}
}

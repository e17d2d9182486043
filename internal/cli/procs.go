package cli

import (
	"os"
	"runtime"
)

// LimitProcs lowers GOMAXPROCS to what a command about to work on hosts
// hosts, at most concurrency at a time, can use (procsFor), and returns
// the GOMAXPROCS it leaves. It is the bitsremote command's Factory.Procs
// (tests, whose simulated hosts share the process, keep every P); a
// GOMAXPROCS set in the environment is left as it is.
//
// A command against one host does one exchange at a time and spends most
// of its time waiting for the host. With a second P idle, the Go
// scheduler wakes a thread to look for work on it each time the reply
// wakes the command's goroutine, and that thread spins and sleeps again
// for nothing: measured here, one Get cost 52–54 µs of CPU with two Ps
// and 44–46 µs with one (BenchmarkGetRoundTripBasic/child, -cpu 1,2).
// Fleets keep every P their hosts can use.
func LimitProcs(hosts, concurrency int) int {
	procs := runtime.GOMAXPROCS(0)
	if os.Getenv("GOMAXPROCS") != "" {
		return procs
	}
	if n := procsFor(hosts, concurrency, procs); n < procs {
		runtime.GOMAXPROCS(n)
		return n
	}
	return procs
}

// procsFor is the number of Ps worth running for hosts hosts handled
// concurrency at a time with procs available: one per host worked on at
// once, at least one and at most procs.
func procsFor(hosts, concurrency, procs int) int {
	return max(1, min(hosts, concurrency, procs))
}

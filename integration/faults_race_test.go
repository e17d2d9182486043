//go:build race

package integration

// raceEnabled scales the fault-injection suite down under the race
// detector, which slows XML and RC4 work about tenfold.
const raceEnabled = true

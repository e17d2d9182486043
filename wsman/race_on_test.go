//go:build race

package wsman

// raceEnabled: the race detector's instrumentation moves values to the
// heap, so allocation counts are only asserted without it.
const raceEnabled = true

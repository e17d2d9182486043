package bitssim

import "time"

// Clock is the simulator's source of time, so that tests can control the
// retry delays and timeouts of jobs. Times it returns are what the jobs'
// FILETIME properties show.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

// realClock is the wall clock.
type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// scaled turns a provider duration in seconds (MinimumRetryDelay,
// NoProgressTimeout) into simulated time: with TimeScale 0.001 the default
// 600 s retry delay takes 0.6 s.
func (p *Provider) scaled(seconds uint32) time.Duration {
	return time.Duration(float64(seconds) * float64(time.Second) * p.cfg.TimeScale)
}

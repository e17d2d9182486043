package bitsprov

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// stallSource is a host that takes requests and never answers: each read
// of the job lasts until its context ends. After answers reads answer
// with a Transferring job first, that many times.
type stallSource struct {
	answers int
	reads   int
}

func (s *stallSource) Job(ctx context.Context, id string) (*Job, error) {
	s.reads++
	if s.reads <= s.answers {
		return &Job{JobID: id, State: StateTransferring}, nil
	}
	<-ctx.Done()
	return nil, fmt.Errorf("srv1: Get %s: %w", id, ctx.Err())
}

func (s *stallSource) SetJobState(context.Context, string, JobAction) (Code, error) {
	return 0, fmt.Errorf("unexpected SetJobState")
}

func (s *stallSource) GetError(context.Context, string, uint32) (*JobError, error) {
	return nil, fmt.Errorf("unexpected GetError")
}

// TestWaitDeadlineBoundsReads: a wait whose host stops answering ends at
// its deadline (plus readGrace), timed out, instead of when a read of the
// job gives up on its own (minutes, retries included; here never): with
// Timeout after the job was seen, and with UnseenTimeout before.
func TestWaitDeadlineBoundsReads(t *testing.T) {
	for _, tc := range []struct {
		name   string
		p      Policy
		src    *stallSource
		reason string
	}{
		{"Timeout", Policy{Interval: 10 * time.Millisecond, Timeout: 100 * time.Millisecond}, &stallSource{answers: 1},
			"deadline passed with the job Transferring when last seen; host then unreachable: srv1: Get " + fakeID + ": context deadline exceeded"},
		{"UnseenTimeout", Policy{Interval: 10 * time.Millisecond, UnseenTimeout: 100 * time.Millisecond}, &stallSource{},
			"job not seen in the 100ms since the wait began; host unreachable: srv1: Get " + fakeID + ": context deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			type result struct {
				out *Outcome
				err error
			}
			done := make(chan result, 1)
			go func() {
				out, err := Wait(context.Background(), tc.src, fakeID, tc.p)
				done <- result{out, err}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("the wait is still running 30 s after its 100 ms deadline")
			}
			if r.err != nil || r.out.Action != ResultTimedOut || r.out.Reason != tc.reason {
				t.Fatalf("Wait = %+v, %v; want TimedOut with reason %q", r.out, r.err, tc.reason)
			}
			if !strings.Contains(r.out.LastErr.Error(), "deadline exceeded") {
				t.Errorf("LastErr %v", r.out.LastErr)
			}
		})
	}
}

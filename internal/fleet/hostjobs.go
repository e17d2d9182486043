package fleet

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/wsman"
)

// enumerateBatch is the MaxElements of a job enumeration: a BITS queue
// rarely holds more, so one optimized Enumerate usually answers for every
// job on the host.
const enumerateBatch = 256

// EnumerateJobs reads every job in the host's queue with one optimized
// enumeration (and Pulls if the queue is longer than a batch), keyed by
// upper-case JobId. Jobs are decoded straight from the reply
// (EnumerateViews, JobFromView) rather than through an Instance each: the
// fleet's poll cycle runs this once per host, and the Instances were half
// of what it allocated.
func EnumerateJobs(ctx context.Context, w *wsman.Client) (map[string]*bitsprov.Job, error) {
	jobs := map[string]*bitsprov.Job{}
	for v, err := range w.EnumerateViews(ctx, bitsprov.ResourceURI, wsman.EnumerateOptions{Optimize: true, MaxElements: enumerateBatch}) {
		if err != nil {
			return nil, fmt.Errorf("enumerate jobs: %w", err)
		}
		var j *bitsprov.Job
		switch {
		case v.Object.Valid():
			j, err = bitsprov.JobFromView(v.Object)
		case v.Item != nil && v.Item.Instance != nil:
			j, err = bitsprov.JobFromInstance(v.Item.Instance)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: enumerate jobs: %w", w.Host, err)
		}
		jobs[strings.ToUpper(j.JobID)] = j
	}
	return jobs, nil
}

// HostJobs is a bitsprov.JobSource for many jobs on one host. While two
// or more jobs are followed, a Job call is answered from one enumeration
// of the host's queue shared by every waiter and refreshed when older
// than MaxAge; so a poll cycle over ten jobs is one request, not ten. A
// job missing from the enumeration is read with Get, which tells a job
// that left the queue (not found) from a passing error.
type HostJobs struct {
	Bits *bitsprov.Client
	// MaxAge is how long an enumeration answers for (default: half a
	// second).
	MaxAge time.Duration

	ctx context.Context

	mu       sync.Mutex
	active   int
	snap     map[string]*bitsprov.Job
	at       time.Time
	fetching chan struct{}
	err      error
}

// NewHostJobs returns a source over c; ctx bounds the shared
// enumerations (it should be the host's context, not one job's).
func NewHostJobs(ctx context.Context, c *bitsprov.Client, maxAge time.Duration) *HostJobs {
	if maxAge <= 0 {
		maxAge = 500 * time.Millisecond
	}
	return &HostJobs{Bits: c, MaxAge: maxAge, ctx: ctx}
}

// Follow counts a job being waited for; the returned func stops counting.
func (h *HostJobs) Follow() (done func()) {
	h.mu.Lock()
	h.active++
	h.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			h.active--
			h.mu.Unlock()
		})
	}
}

// Job reads one job, from the shared enumeration when it is worth it.
func (h *HostJobs) Job(ctx context.Context, jobID string) (*bitsprov.Job, error) {
	key := strings.ToUpper(jobID)
	for {
		h.mu.Lock()
		if h.active < 2 {
			h.mu.Unlock()
			return h.Bits.Job(ctx, jobID)
		}
		if h.fetching == nil && h.snap != nil && time.Since(h.at) < h.MaxAge {
			j, ok := h.snap[key]
			h.mu.Unlock()
			if ok {
				cp := *j
				return &cp, nil
			}
			return h.Bits.Job(ctx, jobID)
		}
		if h.fetching != nil {
			ch := h.fetching
			h.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return nil, fmt.Errorf("get job %s: %w", jobID, ctx.Err())
			}
			h.mu.Lock()
			err := h.err
			h.mu.Unlock()
			if err != nil {
				return nil, err
			}
			continue
		}
		ch := make(chan struct{})
		h.fetching = ch
		h.mu.Unlock()
		snap, err := EnumerateJobs(h.ctx, h.Bits.WSMan)
		h.mu.Lock()
		h.fetching = nil
		h.err = err
		if err == nil {
			h.snap, h.at = snap, time.Now()
		}
		h.mu.Unlock()
		close(ch)
		if err != nil {
			return nil, err
		}
	}
}

// forget drops a job from the snapshot after it was acted on, so the next
// read sees its new state.
func (h *HostJobs) forget(jobID string) {
	h.mu.Lock()
	delete(h.snap, strings.ToUpper(jobID))
	h.mu.Unlock()
}

// SetJobState forwards to the host.
func (h *HostJobs) SetJobState(ctx context.Context, jobID string, a bitsprov.JobAction) (bitsprov.Code, error) {
	defer h.forget(jobID)
	return h.Bits.SetJobState(ctx, jobID, a)
}

// GetError forwards to the host.
func (h *HostJobs) GetError(ctx context.Context, jobID string, languageID uint32) (*bitsprov.JobError, error) {
	return h.Bits.GetError(ctx, jobID, languageID)
}

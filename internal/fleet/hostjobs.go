package fleet

import (
	"context"
	"errors"
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

// EnumerateJobs reads the progress of every job in the host's queue
// (bitsprov.Client.EnumerateProgress: one WQL enumeration of just the
// properties a poll needs), keyed by upper-case JobId. This is the
// fleet's poll cycle, run once per host; the jobs are partial, fit to
// show progress and to see that a job is still in progress, not to act
// on or to report.
func EnumerateJobs(ctx context.Context, w *wsman.Client) (map[string]*bitsprov.PartialJob, error) {
	jobs, err := bitsprov.NewClient(w).EnumerateProgress(ctx)
	if err != nil {
		return nil, fmt.Errorf("enumerate jobs: %w", err)
	}
	out := make(map[string]*bitsprov.PartialJob, len(jobs))
	for _, j := range jobs {
		out[strings.ToUpper(j.Job.JobID)] = j
	}
	return out, nil
}

// enumerateFullJobs reads every job in the host's queue whole with one
// optimized enumeration (and Pulls if the queue is longer than a batch),
// keyed by upper-case JobId. Jobs are decoded straight from the reply
// (EnumerateViews, JobFromView) rather than through an Instance each.
func enumerateFullJobs(ctx context.Context, w *wsman.Client) (map[string]*bitsprov.Job, error) {
	jobs := map[string]*bitsprov.Job{}
	for v, err := range w.EnumerateViews(ctx, bitsprov.ResourceURI, wsman.EnumerateOptions{Optimize: true, MaxElements: enumerateBatch}) {
		if err != nil {
			return nil, fmt.Errorf("enumerate jobs: %w", err)
		}
		j, err := bitsprov.JobFromItemView(v)
		if err != nil {
			return nil, fmt.Errorf("%s: enumerate jobs: %w", w.Host, err)
		}
		if j != nil {
			jobs[strings.ToUpper(j.JobID)] = j
		}
	}
	return jobs, nil
}

// settleTimeout bounds the Get that reads a job whole when a wait ended
// on a partial one (Settle); the wait's own context may have ended.
const settleTimeout = 10 * time.Second

// HostJobs is a bitsprov.JobSource for many jobs on one host. While two
// or more jobs are followed, a Job call is answered from one enumeration
// of the host's queue shared by every waiter and refreshed when older
// than MaxAge; so a poll cycle over ten jobs is one request, not ten.
//
// The first enumeration reads the jobs whole; later ones read only their
// progress (EnumerateJobs), about a tenth of the bytes. A job whose
// progress shows it still in progress (PartialJob.Pending) is answered
// with that partial job, which the poller only shows and keeps waiting
// on. In any other state (Transferred, Error, TransientError, gone), and
// for a job missing from the enumeration, the job is read whole with
// Get, so that the poller acts on, and reports, the whole job; Get also
// tells a job that left the queue (not found) from a passing error. A
// wait that ends on a partial job is settled with Settle.
type HostJobs struct {
	Bits *bitsprov.Client
	// MaxAge is how long an enumeration answers for (default: half a
	// second).
	MaxAge time.Duration

	ctx context.Context

	mu       sync.Mutex
	active   int
	snap     map[string]*bitsprov.PartialJob
	snapFull bool // snap holds whole jobs (the first enumeration)
	at       time.Time
	fetching chan struct{}
	err      error
	// fetches counts the enumerations running (fetch), so that the
	// host's work ends only when they have (stop).
	fetches sync.WaitGroup
	// full is the last whole read of each job; partial the last partial
	// job handed out for it, while it is the last one handed out.
	full    map[string]*bitsprov.Job
	partial map[string]handedOut
	// acted is the job read whole just before a Complete or Cancel of a
	// job last seen partial (a wait that timed out and cancels).
	acted map[string]*bitsprov.Job
}

type handedOut struct {
	job  *bitsprov.Job
	from *bitsprov.PartialJob
}

// NewHostJobs returns a source over c; ctx bounds the shared
// enumerations (it should be the host's context, not one job's).
func NewHostJobs(ctx context.Context, c *bitsprov.Client, maxAge time.Duration) *HostJobs {
	if maxAge <= 0 {
		maxAge = 500 * time.Millisecond
	}
	return &HostJobs{Bits: c, MaxAge: maxAge, ctx: ctx,
		full: map[string]*bitsprov.Job{}, partial: map[string]handedOut{}, acted: map[string]*bitsprov.Job{}}
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

// get reads one job whole and remembers it.
func (h *HostJobs) get(ctx context.Context, jobID string) (*bitsprov.Job, error) {
	j, err := h.Bits.Job(ctx, jobID)
	if err == nil {
		h.mu.Lock()
		h.wholeLocked(strings.ToUpper(jobID), j)
		h.mu.Unlock()
	}
	return j, err
}

// wholeLocked notes j, read whole, as the last job handed out for key.
func (h *HostJobs) wholeLocked(key string, j *bitsprov.Job) {
	cp := *j
	h.full[key] = &cp
	delete(h.partial, key)
}

// Job reads one job, from the shared enumeration when it is worth it.
func (h *HostJobs) Job(ctx context.Context, jobID string) (*bitsprov.Job, error) {
	key := strings.ToUpper(jobID)
	// fresh: an enumeration finished while this call waited, so its
	// snapshot answers whatever MaxAge says (a MaxAge shorter than an
	// enumeration would otherwise enumerate for ever).
	fresh := false
	for {
		h.mu.Lock()
		if h.active < 2 {
			h.mu.Unlock()
			return h.get(ctx, jobID)
		}
		if h.fetching == nil && h.snap != nil && (fresh || time.Since(h.at) < h.MaxAge) {
			p, ok := h.snap[key]
			switch {
			case ok && h.snapFull:
				cp := p.Job
				h.wholeLocked(key, &cp)
				h.mu.Unlock()
				return &cp, nil
			case ok && p.Pending():
				cp := p.Job
				h.partial[key] = handedOut{job: &cp, from: p}
				h.mu.Unlock()
				return &cp, nil
			}
			h.mu.Unlock()
			return h.get(ctx, jobID)
		}
		if h.fetching != nil {
			ch := h.fetching
			h.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return nil, fmt.Errorf("get job %s on %s: %w", jobID, h.Bits.Host(), ctx.Err())
			}
			h.mu.Lock()
			err := h.err
			h.mu.Unlock()
			if err != nil {
				return nil, err
			}
			fresh = true
			continue
		}
		// The enumeration runs on its own, under the host's context, and
		// this call waits for it as every other caller does: so that a
		// wait whose deadline cuts its read (bitsprov's readContext) is
		// not held by a host that never answers, while the enumeration
		// still serves the other jobs' waits when it ends.
		ch := make(chan struct{})
		h.fetching = ch
		first := h.snap == nil
		h.fetches.Add(1)
		h.mu.Unlock()
		go func() {
			defer h.fetches.Done()
			h.fetch(ch, first)
		}()
	}
}

// stop waits for the enumerations still running once every job's wait
// is over; cancel, which ends the context given to NewHostJobs, stops
// one that a silent host holds (the wait that started it may have been
// cut at its deadline), so that none runs on after the host's work, on
// a connection its pool closes.
func (h *HostJobs) stop(cancel context.CancelFunc) {
	cancel()
	h.fetches.Wait()
}

// fetch enumerates the host's queue and publishes the snapshot (or the
// error) to the callers waiting on ch.
func (h *HostJobs) fetch(ch chan struct{}, first bool) {
	snap, err := h.enumerate(first)
	h.mu.Lock()
	h.fetching = nil
	h.err = err
	if err == nil {
		h.snap, h.snapFull, h.at = snap, first, time.Now()
	}
	h.mu.Unlock()
	close(ch)
}

// enumerate reads the host's queue: whole the first time, so that every
// job followed has a whole read to fall back on (Settle), then only the
// progress.
func (h *HostJobs) enumerate(whole bool) (map[string]*bitsprov.PartialJob, error) {
	if !whole {
		return EnumerateJobs(h.ctx, h.Bits.WSMan)
	}
	jobs, err := enumerateFullJobs(h.ctx, h.Bits.WSMan)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*bitsprov.PartialJob, len(jobs))
	for k, j := range jobs {
		out[k] = &bitsprov.PartialJob{Job: *j}
	}
	return out, nil
}

// Settle returns the whole job for j, the last job a wait for jobID
// read: j itself when it was read whole; else the job as read whole
// just before the wait's Complete or Cancel; else, when the wait was
// interrupted (ctx cancelled), the last whole read of the job with j's
// progress laid over it, without another request; else the job as a Get
// reads it now (under ctx without its cancellation, for at most
// settleTimeout, so that a wait that timed out still reports the whole
// job). When that Get fails (the host is down, the job left the queue),
// it is the last whole read with j's progress laid over it; j only if
// the job was never read whole.
func (h *HostJobs) Settle(ctx context.Context, jobID string, j *bitsprov.Job) *bitsprov.Job {
	if j == nil {
		return nil
	}
	key := strings.ToUpper(jobID)
	h.mu.Lock()
	p, ok := h.partial[key]
	acted, base := h.acted[key], h.full[key]
	h.mu.Unlock()
	if !ok || p.job != j {
		return j
	}
	if acted != nil {
		return acted
	}
	if errors.Is(ctx.Err(), context.Canceled) && base != nil {
		// Interrupted (Ctrl-C): the user wants out now, not after a Get
		// to each host, unreachable ones included; the last whole read
		// with the newest progress is the record.
		return p.from.Apply(base)
	}
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	if full, err := h.get(gctx, jobID); err == nil {
		return full
	}
	if base != nil {
		return p.from.Apply(base)
	}
	return j
}

// forget drops a job from the snapshot after it was acted on, so the next
// read sees its new state.
func (h *HostJobs) forget(jobID string) {
	h.mu.Lock()
	delete(h.snap, strings.ToUpper(jobID))
	h.mu.Unlock()
}

// SetJobState forwards to the host. A job last handed out partial (a
// wait that timed out and cancels) is read whole first, for Settle: the
// Complete or Cancel takes it out of the queue.
func (h *HostJobs) SetJobState(ctx context.Context, jobID string, a bitsprov.JobAction) (bitsprov.Code, error) {
	defer h.forget(jobID)
	key := strings.ToUpper(jobID)
	h.mu.Lock()
	_, partial := h.partial[key]
	h.mu.Unlock()
	if partial {
		if j, err := h.Bits.Job(ctx, jobID); err == nil {
			h.mu.Lock()
			h.acted[key] = j
			h.mu.Unlock()
		}
	}
	return h.Bits.SetJobState(ctx, jobID, a)
}

// GetError forwards to the host.
func (h *HostJobs) GetError(ctx context.Context, jobID string, languageID uint32) (*bitsprov.JobError, error) {
	return h.Bits.GetError(ctx, jobID, languageID)
}

package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/wsman"
)

// JobSpec is one job to create on every host.
type JobSpec struct {
	// Row is the CSV row the job comes from (0 for transfer).
	Row int
	// Opts describe the job. Their Description gets the job's marker
	// appended; credentials are sent but never recorded.
	Opts bitsprov.CreateJobOptions
}

// MaxDescription is what a job's Description may hold with its marker
// appended as bitsprov.DescriptionWithMarker does (BITS allows 1,024
// characters).
const MaxDescription = 1024 - len(" [bitsremote:]") - 36

// Fingerprint identifies a fleet request for --resume: the command and
// every job's files and settings, but not the hosts (a resume may narrow
// or widen them) and never a password.
func Fingerprint(command string, specs []JobSpec, extra ...string) string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	_ = enc.Encode(command)
	for _, s := range specs {
		_ = enc.Encode(s.Row)
		_ = enc.Encode(requestOf(s.Opts))
		o := s.Opts
		_ = enc.Encode([]any{o.Description, o.Suspended, o.MinimumRetryDelay, o.NoProgressTimeout, o.ServiceAccount, o.Proxy, o.CancelOnSetupFailure})
		for _, c := range o.Credentials {
			_ = enc.Encode([]any{c.Target, c.Scheme, c.UserName})
		}
	}
	for _, e := range extra {
		_ = enc.Encode(e)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

func requestOf(o bitsprov.CreateJobOptions) Request {
	r := Request{DisplayName: o.DisplayName, Type: o.Type.String()}
	if o.Priority != nil {
		r.Priority = o.Priority.String()
	}
	r.Files = append(r.Files, FileRecord{RemoteURL: o.RemoteURL, LocalFile: o.LocalFile})
	for _, f := range o.ExtraFiles {
		r.Files = append(r.Files, FileRecord{RemoteURL: f.RemoteURL, LocalFile: f.LocalFile})
	}
	return r
}

// JobResult is how one job on one host ended up.
type JobResult struct {
	Host  string
	Index int
	Row   int
	JobID string
	// Job is the last state read, if any.
	Job *bitsprov.Job
	// Outcome is the wait's, when there was one; a job the host no
	// longer has has a Gone outcome even when it was not waited for.
	Outcome *bitsprov.Outcome
	// Step is where the ledger leaves the job.
	Step Step
	// Done reports that the ledger already had the job final, so it was
	// not touched.
	Done bool
	// Adopted reports that the job was found by its marker after a lost
	// create reply.
	Adopted bool
	Err     error
}

// Transfer creates, sets up, resumes, waits for and completes jobs on a
// host, recording each step in the ledger first, so that a run killed at
// any point resumes without creating a job twice or forgetting one.
type Transfer struct {
	Specs []JobSpec
	// Ledger and Run record the jobs; a nil Ledger records nothing (and
	// cannot resume).
	Ledger *Ledger
	Run    *Run
	// Async stops after resume.
	Async bool
	// Policy is the wait's; its Progress and OnRetry are replaced (use
	// OnProgress and OnRetry).
	Policy bitsprov.Policy
	// OnProgress, if set, is called with every job state read.
	OnProgress func(host string, index int, j *bitsprov.Job)
	// OnRetry, if set, is called with every host error a job's wait rides
	// out (Policy.OnRetry is replaced), so that a caller can say why
	// nothing seems to happen.
	OnRetry func(host string, index int, jobID string, err error)
	// OnJob, if set, is called as each job's result is known.
	OnJob func(JobResult)
	// Now is the clock of ledger times (nil: time.Now).
	Now func() time.Time
}

// GoneReason begins the reason recorded for a job of a run that its host
// no longer has when we look for it; the job's last recorded state
// follows.
const GoneReason = "job is no longer on the host (completed or cancelled elsewhere); last recorded state "

type hostRun struct {
	t       *Transfer
	c       *Conn
	entries map[int]*Entry
	mu      sync.Mutex
}

// seenByRun reports that e is a job of a run: one with a marker, which
// the run created (CreateJob returned its id) or found by the marker in
// its Description. Such a job existed, so a host that no longer has it
// lost it to someone else (StepGone, the job did not succeed). A job id
// a user typed (WaitJobs, wait JOBID...; entries without a marker) may
// simply be wrong, and its absence stays a not-found error.
//
// This replaced Transfer.MissingIsGone: only wait --run set the flag,
// so transfer --resume reported such a job as a not-found fault and left
// it open, failing again at every resume. Whether a job was seen is a
// fact of its entry, not a choice of the caller.
func seenByRun(e *Entry) bool { return e.Marker != "" }

func (t *Transfer) put(e *Entry) error {
	if t.Ledger == nil {
		return nil
	}
	return t.Ledger.Put(e)
}

// Host runs every spec on one host and returns the jobs' results in spec
// order. The error is non-nil when any job failed; it is the first one.
func (t *Transfer) Host(ctx context.Context, c *Conn) ([]JobResult, error) {
	hr := &hostRun{t: t, c: c, entries: map[int]*Entry{}}
	if t.Ledger != nil {
		var err error
		if hr.entries, err = t.Ledger.HostEntries(t.Run.ID, c.Name); err != nil {
			return nil, err
		}
	}
	results := make([]JobResult, len(t.Specs))
	// Jobs whose create reply was lost are found by their marker in one
	// enumeration.
	var byMarker map[string]*bitsprov.Job
	for i := range t.Specs {
		if e := hr.entries[i]; e != nil && e.Step == StepIntent {
			jobs, err := enumerateFullJobs(ctx, c.WSMan)
			if err != nil {
				return nil, fmt.Errorf("look for jobs of an interrupted run: %w", err)
			}
			byMarker = map[string]*bitsprov.Job{}
			for _, j := range jobs {
				if _, m := bitsprov.SplitMarker(j.Description); m != "" {
					byMarker[m] = j
				}
			}
			break
		}
	}
	// Create and set up one job after another: requests to one host share
	// one connection, so parallel creates would only queue.
	var waits []int
	for i, spec := range t.Specs {
		r := &results[i]
		r.Host, r.Index, r.Row = c.Name, i, spec.Row
		e := hr.entries[i]
		if e == nil {
			e = &Entry{Host: c.Name, Index: i, Row: spec.Row, Marker: bitsprov.NewMarker(), Step: StepIntent, Request: requestOf(spec.Opts)}
			if t.Run != nil {
				e.RunID = t.Run.ID
			}
			hr.entries[i] = e
		} else if e.Step.Final() {
			r.JobID, r.Step, r.Done = e.JobID, e.Step, true
			if _, err := bitsprov.ParseState(e.State); err == nil && e.JobID != "" {
				// The job as the ledger last saw it, for the record: the
				// same job gone reported when the entry became final.
				r.Job = e.RecordedJob()
			}
			if e.Error != "" {
				r.Err = errors.New(e.Error)
			}
			t.emit(*r)
			continue
		}
		if err := ctx.Err(); err != nil {
			r.Err, r.Step, r.JobID = fmt.Errorf("not started: %w", err), e.Step, e.JobID
			continue
		}
		if e.Step == StepIntent {
			if j := byMarker[e.Marker]; j != nil {
				e.JobID, e.Step, e.State = j.JobID, StepCreated, j.State.String()
				e.Endpoint = c.Record()
				r.Adopted = true
				if err := t.put(e); err != nil {
					r.Err = err
					continue
				}
			}
		}
		if err := hr.create(ctx, e, spec, r); err != nil {
			r.Err, r.Step, r.JobID = err, e.Step, e.JobID
			t.emit(*r)
			continue
		}
		r.JobID, r.Step = e.JobID, e.Step
		if t.Async || spec.Opts.Suspended {
			t.emit(*r)
			continue
		}
		waits = append(waits, i)
	}
	if len(waits) > 0 {
		hr.waitAll(ctx, waits, results)
	}
	var first error
	for _, r := range results {
		if r.Err != nil {
			first = r.Err
			break
		}
	}
	return results, first
}

func (t *Transfer) emit(r JobResult) {
	if t.OnJob != nil {
		t.OnJob(r)
	}
}

// definite reports an error after which the job surely was not created:
// the host answered with a fault or refused the request (HTTP 4xx), or
// the options were refused before sending. A lost connection, a timeout,
// a 5xx or a reply we could not read may hide a created job, and bitsprov
// says so with wsman.ErrAmbiguous.
func definite(err error) bool {
	if err == nil || wsman.IsAmbiguous(err) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var f *wsman.Fault
	if errors.As(err, &f) {
		return !wsman.IsTimedOut(err)
	}
	var he *wsman.HTTPError
	if errors.As(err, &he) {
		return he.StatusCode >= 400 && he.StatusCode < 500
	}
	return strings.HasPrefix(err.Error(), "bitsprov:")
}

// create brings e from intent (or created) to resumed.
func (hr *hostRun) create(ctx context.Context, e *Entry, spec JobSpec, r *JobResult) error {
	t, c := hr.t, hr.c
	resuming := false
	switch e.Step {
	case StepIntent:
		e.Endpoint = c.Record()
		if err := t.put(e); err != nil {
			return err
		}
		o := spec.Opts
		min := bitsprov.CreateJobOptions{
			DisplayName: o.DisplayName, RemoteURL: o.RemoteURL, LocalFile: o.LocalFile,
			Type: o.Type, ServiceAccount: o.ServiceAccount,
			Description: o.Description, Marker: e.Marker, Suspended: true,
		}
		id, err := c.Bits.CreateJob(ctx, min)
		if err != nil {
			if definite(err) {
				e.Step, e.Error = StepFailed, err.Error()
				_ = t.put(e)
				return fmt.Errorf("create job: %w", err)
			}
			// The host may have created the job, or was not reached:
			// leave the intent, so that --resume looks for the job by
			// its marker before creating it.
			if wsman.IsAmbiguous(err) {
				return fmt.Errorf("create job: %w (the job may exist; run again with --resume to find it)", err)
			}
			return fmt.Errorf("create job: %w", err)
		}
		e.JobID, e.Step, e.State = id, StepCreated, bitsprov.StateSuspended.String()
		if err := t.put(e); err != nil {
			return err
		}
	case StepCreated:
		resuming = true
	default:
		return nil // resumed, left, completing, cancelling: on to the wait
	}
	if err := c.Bits.SetupJob(ctx, e.JobID, spec.Opts, resuming); err != nil {
		var se *bitsprov.SetupError
		if !errors.As(err, &se) {
			// The options were refused before anything was sent.
			return fmt.Errorf("job %s set up: %w", e.JobID, err)
		}
		if errors.Is(se.Err, bitsprov.ErrNotFound) && seenByRun(e) {
			if err := hr.reachedAsRecorded(e, se.Err); err != nil {
				return err
			}
			// The host answered that the job we created (or a resume
			// found in the ledger as created) does not exist: someone
			// cancelled or completed it. Final, so that a resume does
			// not fail on it again; there is nothing to cancel.
			hr.gone(e, r, nil)
			return r.Err
		}
		if spec.Opts.CancelOnSetupFailure && definite(se.Err) {
			e.Step = StepCancelling
			_ = t.put(e)
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			_, cerr := c.Bits.Cancel(cctx, e.JobID)
			cancel()
			if cerr == nil || errors.Is(cerr, bitsprov.ErrNotFound) {
				se.Cancelled = true
				e.Step, e.Error, e.State = StepCancelled, se.Error(), bitsprov.StateCancelled.String()
				_ = t.put(e)
				return se
			}
			se.CancelErr = cerr
		}
		// The SetupError names the host, the job and the failed step.
		return se
	}
	if t.Async || spec.Opts.Suspended {
		// Read the job as the resume left it, before the ledger write.
		if j, err := c.Bits.Job(ctx, e.JobID); err == nil {
			r.Job = j
			e.State = j.State.String()
		}
	}
	e.Step, e.Endpoint = StepResumed, c.Record()
	return t.put(e)
}

// ledgerSource records Complete and Cancel in the ledger before sending
// them, so that a job that left the queue after a kill is known to be
// ours and acknowledged, not lost.
type ledgerSource struct {
	*HostJobs
	hr *hostRun
	e  *Entry
}

func (s *ledgerSource) SetJobState(ctx context.Context, jobID string, a bitsprov.JobAction) (bitsprov.Code, error) {
	step := s.e.Step
	switch a {
	case bitsprov.ActionComplete:
		step = StepCompleting
	case bitsprov.ActionCancel:
		step = StepCancelling
	}
	if step != s.e.Step {
		s.hr.mu.Lock()
		s.e.Step, s.e.Endpoint = step, s.hr.c.Record()
		err := s.hr.t.put(s.e)
		s.hr.mu.Unlock()
		if err != nil {
			return 0, err
		}
	}
	return s.HostJobs.SetJobState(ctx, jobID, a)
}

// waitAll follows the host's jobs together: one goroutine per job, all
// reading from one shared enumeration of the host's queue per cycle.
func (hr *hostRun) waitAll(ctx context.Context, idx []int, results []JobResult) {
	t, c := hr.t, hr.c
	hctx, cancel := context.WithCancel(ctx)
	src := NewHostJobs(hctx, c.Bits, t.Policy.Interval/2)
	defer src.stop(cancel)
	var wg sync.WaitGroup
	for _, i := range idx {
		e := hr.entries[i]
		done := src.Follow()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer done()
			r := &results[i]
			hr.waitOne(ctx, src, e, r)
			t.emit(*r)
		}()
	}
	wg.Wait()
}

func (hr *hostRun) waitOne(ctx context.Context, src *HostJobs, e *Entry, r *JobResult) {
	t, c := hr.t, hr.c
	r.JobID = e.JobID
	setStep := func(s Step, st, errText string) { hr.setStep(e, r, s, st, errText) }
	// After a kill between recording Complete (or Cancel) and hearing
	// back, a job no longer in the queue was acknowledged (cancelled) by
	// us.
	if e.Step == StepCompleting || e.Step == StepCancelling {
		j, err := c.Bits.Job(ctx, e.JobID)
		if errors.Is(err, bitsprov.ErrNotFound) {
			if rerr := hr.reachedAsRecorded(e, err); rerr != nil {
				r.Err, r.Step = rerr, e.Step
				return
			}
		}
		switch {
		case errors.Is(err, bitsprov.ErrNotFound):
			final, st := StepAcknowledged, bitsprov.StateAcknowledged
			if e.Step == StepCancelling {
				final, st = StepCancelled, bitsprov.StateCancelled
			}
			r.Outcome = &bitsprov.Outcome{Final: st, Reason: "the job had left the queue after our " + map[Step]string{StepCompleting: "Complete", StepCancelling: "Cancel"}[e.Step]}
			if final == StepAcknowledged {
				r.Outcome.Action = bitsprov.ResultCompleted
			} else {
				r.Outcome.Action = bitsprov.ResultCancelled
			}
			setStep(final, st.String(), "")
			return
		case err != nil:
			r.Err, r.Step = fmt.Errorf("job %s: %w", e.JobID, err), e.Step
			return
		}
		r.Job = j
	}
	p := t.Policy
	p.Progress = func(j *bitsprov.Job) {
		r.Job = j
		if t.OnProgress != nil {
			t.OnProgress(c.Name, e.Index, j)
		}
	}
	p.OnRetry = nil
	if t.OnRetry != nil {
		p.OnRetry = func(err error) { t.OnRetry(c.Name, e.Index, e.JobID, err) }
	}
	out, err := bitsprov.Wait(ctx, &ledgerSource{HostJobs: src, hr: hr, e: e}, e.JobID, p)
	r.Outcome = out
	if out != nil && out.Job != nil {
		// The wait may have ended (timed out, interrupted) on a job read
		// partially: what is recorded and reported is the whole job.
		out.Job = src.Settle(ctx, e.JobID, out.Job)
		r.Job = out.Job
	}
	if err != nil && seenByRun(e) && out != nil && out.Job == nil && errors.Is(err, bitsprov.ErrNotFound) {
		if rerr := hr.reachedAsRecorded(e, err); rerr != nil {
			r.Err, r.Step = rerr, e.Step
			return
		}
		// Never seen in this wait (once seen, Wait itself says Gone).
		hr.gone(e, r, out)
		return
	}
	if err != nil {
		r.Err, r.Step = err, e.Step
		return
	}
	switch out.Action {
	case bitsprov.ResultCompleted:
		setStep(StepAcknowledged, bitsprov.StateAcknowledged.String(), "")
	case bitsprov.ResultCancelled:
		setStep(StepCancelled, bitsprov.StateCancelled.String(), out.Reason)
		fail(r, fmt.Errorf("job %s: %s", e.JobID, out.Reason))
	case bitsprov.ResultGone:
		setStep(StepGone, "", out.Reason)
		fail(r, fmt.Errorf("job %s: %s", e.JobID, out.Reason))
	default: // Left, TimedOut
		setStep(StepLeft, "", out.Reason)
		if out.Action == bitsprov.ResultTimedOut {
			fail(r, fmt.Errorf("job %s: %s: %w", e.JobID, out.Reason, context.DeadlineExceeded))
		} else if out.Final != bitsprov.StateTransferred {
			fail(r, fmt.Errorf("job %s: %s", e.JobID, out.Reason))
		}
	}
}

// fail sets r.Err to the job's failure, keeping the ledger write error
// that setStep may have left there: a job reported gone, cancelled or
// left must not hide that the ledger did not record it, which the next
// --resume or wait --run would otherwise show as a surprise.
func fail(r *JobResult, err error) {
	if r.Err != nil {
		err = fmt.Errorf("%w (and the ledger did not record it: %w)", err, r.Err)
	}
	r.Err = err
}

// reachedAsRecorded returns nil when hr looks for e's job the way the
// run that recorded it reached the host: the same endpoint and, when the
// record names it, the same account. Only then does the host's "not
// found" (notFound) mean that the job left the queue. BITS shows a user
// only the jobs that user may see, and an inventory may come to give the
// host's name another address, where the job never was: recording such a
// job gone or acknowledged would abandon it for good. Otherwise it
// returns notFound with what differs, and the job's entry stays as it
// is. Entries recorded before the ledger kept endpoints are taken as
// reached the same way, as they always were.
func (hr *hostRun) reachedAsRecorded(e *Entry, notFound error) error {
	rec := e.Endpoint
	if rec == nil {
		return nil
	}
	var why string
	switch {
	case !strings.EqualFold(rec.URL, hr.c.URL):
		why = fmt.Sprintf("the run reached the host at %s, and this command at %s", rec.URL, hr.c.URL)
	case rec.Account != "" && !strings.EqualFold(rec.Account, hr.c.user):
		why = fmt.Sprintf("the run authenticated as %s, and this command as %s, who may not see the run's jobs", rec.Account, hr.c.user)
	default:
		return nil
	}
	return fmt.Errorf("job %s: %w; not recorded as finished, because %s (look for it as the run did, or drop the run with 'bitsremote ledger prune --unfinished')", e.JobID, notFound, why)
}

// setStep records e's step; the BITS state is st, or the last one read
// (r.Job) when st is "".
func (hr *hostRun) setStep(e *Entry, r *JobResult, s Step, st, errText string) {
	hr.mu.Lock()
	e.Step, e.Error = s, errText
	switch {
	case st != "":
		e.State = st
	case r.Job != nil:
		e.State = r.Job.State.String()
	}
	if err := hr.t.put(e); err != nil && r.Err == nil {
		r.Err = err
	}
	hr.mu.Unlock()
	r.Step = s
}

// gone records a job of the run that the host does not know as
// StepGone, with the job as the ledger last saw it (state, name, files),
// and reports it failed. out is the wait's outcome, if there was a wait.
func (hr *hostRun) gone(e *Entry, r *JobResult, out *bitsprov.Outcome) {
	if out == nil {
		out = &bitsprov.Outcome{}
	}
	j := e.RecordedJob()
	st := j.State
	out.Job = j
	out.Final, out.Action = st, bitsprov.ResultGone
	out.Reason = GoneReason + e.State
	r.Job, r.Outcome = out.Job, out
	hr.setStep(e, r, StepGone, "", out.Reason)
	fail(r, fmt.Errorf("job %s: %s", e.JobID, out.Reason))
}

// RecordedJob is e's job as the ledger last saw it: its id, name, last
// state read, files and priority (Normal, BITS's default, when the
// request set none).
func (e *Entry) RecordedJob() *bitsprov.Job {
	st, _ := bitsprov.ParseState(e.State)
	// A request that set no priority got BITS's default, Normal.
	j := &bitsprov.Job{JobID: e.JobID, DisplayName: e.Request.DisplayName, State: st, FilesTotal: uint32(len(e.Request.Files)), Priority: bitsprov.PriorityNormal}
	if p, err := bitsprov.ParsePriority(e.Request.Priority); err == nil {
		j.Priority = p
	}
	for _, f := range e.Request.Files {
		j.Files = append(j.Files, bitsprov.File{RemoteURL: f.RemoteURL, LocalFile: f.LocalFile})
	}
	return j
}

// Finish marks the run finished in the ledger when every job on every
// host in hosts is final. An async run stays unfinished, so that a later
// --resume without --async waits for its jobs and completes them. It
// reports whether it marked the run.
func (t *Transfer) Finish(hosts []string) (bool, error) {
	if t.Ledger == nil || t.Run == nil {
		return false, nil
	}
	entries, err := t.Ledger.Entries(t.Run.ID)
	if err != nil {
		return false, err
	}
	final := map[string]int{}
	for _, e := range entries {
		if e.Step.Final() {
			final[e.Host]++
		}
	}
	for _, h := range hosts {
		if final[h] != len(t.Specs) {
			return false, nil
		}
	}
	return true, t.Ledger.FinishRun(t.Run.ID)
}

// WaitEntries follows a run's recorded jobs on one host until each is
// final, reading the host's queue once per cycle for all of them, and
// records every step in t.Ledger as a resumed Transfer does (Completing
// before Complete, then Acknowledged; Cancelled, Gone, Left). entries
// must have a JobId and not be final; their results come back in the
// same order, Index and Row being the entries'. A job the host does not
// know is Gone when its entry has a Marker (a run's job) and a not-found
// error when it has none (an id a user named). t.Specs is not used.
func (t *Transfer) WaitEntries(ctx context.Context, c *Conn, entries []*Entry) []JobResult {
	hr := &hostRun{t: t, c: c, entries: map[int]*Entry{}}
	results := make([]JobResult, len(entries))
	idx := make([]int, len(entries))
	for i, e := range entries {
		hr.entries[i] = e
		results[i] = JobResult{Host: c.Name, Index: e.Index, Row: e.Row, JobID: e.JobID, Step: e.Step}
		idx[i] = i
	}
	if len(idx) > 0 {
		hr.waitAll(ctx, idx, results)
	}
	return results
}

// WaitJobs follows jobs already on a host until each is final, reading
// the host's queue once per cycle for all of them, and stops polling the
// host when the last one ends. p is applied to every job as bitsprov.Wait
// applies it (complete on Transferred, and so on); nothing is recorded.
func WaitJobs(ctx context.Context, c *Conn, ids []string, p bitsprov.Policy, onProgress func(host string, index int, j *bitsprov.Job), onJob func(JobResult)) []JobResult {
	t := &Transfer{Policy: p, OnProgress: onProgress, OnJob: onJob}
	hr := &hostRun{t: t, c: c, entries: map[int]*Entry{}}
	results := make([]JobResult, len(ids))
	idx := make([]int, len(ids))
	for i, id := range ids {
		hr.entries[i] = &Entry{Host: c.Name, Index: i, JobID: id, Step: StepResumed}
		results[i] = JobResult{Host: c.Name, Index: i, JobID: id}
		idx[i] = i
	}
	hr.waitAll(ctx, idx, results)
	return results
}

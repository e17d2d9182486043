package cli

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/bitsremote/bitsremote/bitsprov"
)

// WaitOptions are the options of "wait".
type WaitOptions struct {
	f         *Factory
	JobID     string
	Interval  time.Duration
	Timeout   time.Duration
	Transient string
	OnError   string
	Complete  bool
	// Unreachable is --unreachable-timeout.
	Unreachable time.Duration
}

// waitFlags are the polling flags wait and transfer share.
type waitFlags struct {
	Interval  time.Duration
	Timeout   time.Duration
	Transient string
	OnError   string
	// Unreachable bounds a wait in which the job is never read once.
	Unreachable time.Duration
}

// defaultUnreachable is how long a wait keeps trying a host on which it
// has not seen the job once.
const defaultUnreachable = 2 * time.Minute

// unreachableNoteEvery spaces the "still waiting" notes on stderr.
const unreachableNoteEvery = 30 * time.Second

func (w *waitFlags) add(cmd *cobra.Command, onErrorDefault string) {
	fl := cmd.Flags()
	fl.DurationVar(&w.Interval, "interval", time.Second, "first pause between polls; it grows 1.5x per poll up to 10x")
	fl.DurationVar(&w.Timeout, "timeout", 0, "give up waiting after this long (0: no limit; exit 4, the job is left)")
	fl.StringVar(&w.Transient, "transient", "wait", "on TransientError: wait (BITS retries; give up at the job's NoProgressTimeout, then apply --on-error) or cancel (cancel the job at once, whatever --on-error says)")
	fl.StringVar(&w.OnError, "on-error", onErrorDefault, "on Error: leave the job for inspection, or cancel it")
	fl.DurationVar(&w.Unreachable, "unreachable-timeout", defaultUnreachable, "give up (exit 4, the job is left) when the host has not shown the job once in this long since the wait began; once seen, an unreachable host is waited for (0: no limit)")
}

// policy turns the flags into a poller policy.
func (w *waitFlags) policy(f *Factory) (bitsprov.Policy, error) {
	p := bitsprov.Policy{
		Interval:    w.Interval,
		Backoff:     1.5,
		MaxInterval: 10 * w.Interval,
		Timeout:     w.Timeout,
		Clock:       f.Clock,
	}
	if w.Interval <= 0 {
		return p, usageErrorf("--interval must be positive, got %s", w.Interval)
	}
	if w.Timeout < 0 {
		return p, usageErrorf("--timeout must not be negative, got %s", w.Timeout)
	}
	if w.Unreachable < 0 {
		return p, usageErrorf("--unreachable-timeout must not be negative, got %s", w.Unreachable)
	}
	p.UnseenTimeout = w.Unreachable
	switch strings.ToLower(w.Transient) {
	case "wait":
		p.OnTransient = bitsprov.TransientWait
	case "cancel":
		p.OnTransient = bitsprov.TransientCancel
	default:
		return p, usageErrorf("--transient %q: want wait or cancel", w.Transient)
	}
	switch strings.ToLower(w.OnError) {
	case "leave":
		p.OnError = bitsprov.ErrorLeave
	case "cancel":
		p.OnError = bitsprov.ErrorCancel
	default:
		return p, usageErrorf("--on-error %q: want leave or cancel", w.OnError)
	}
	return p, nil
}

// NewCmdWait builds "wait JOBID".
func NewCmdWait(f *Factory) *cobra.Command {
	opts := &WaitOptions{f: f, Unreachable: defaultUnreachable}
	var wf waitFlags
	cmd := &cobra.Command{
		Use:   "wait JOBID",
		Short: "Wait for a job to finish, showing progress (like gh run watch --exit-status)",
		Long: `Poll a job until it is Transferred, fails, or the timeout passes, drawing
progress on stderr when it is a terminal; then print the job and the outcome.

With --complete a Transferred job is completed, so its files appear on the
host (the PowerShell loop of Microsoft's how-to); without it the job is left
Transferred for "bitsremote complete". A TransientError is ridden out by
default (BITS retries by itself) until the job's NoProgressTimeout, and then
handled like an Error; --transient cancel cancels the job at once, as the
PowerShell loop does, whatever --on-error says. A job in Error is left for
inspection unless --on-error cancel. A suspended job is waited on until
someone resumes it.

While the host does not answer, a note on stderr says so (at the first
failure, then every 30s). A host on which the job has not been seen once
since the wait began is given up after --unreachable-timeout (exit 4).

Here --timeout bounds the whole wait, not each request. Exit codes: 0 the job
was transferred (and completed with --complete); 1 it failed or was
cancelled, or left the queue without us; 4 the timeout passed (the job is
left as it is); 3 and 5 as for every command.`,
		Example: `  bitsremote wait {6F6D6B3E-1B8A-4F3C-9C2E-3A3D1C2B4A5F} --complete -H server1 -u admin
  bitsremote wait {6F6D6B3E-1B8A-4F3C-9C2E-3A3D1C2B4A5F} --timeout 2h --transient cancel --on-error cancel -H server1 -u admin -o json`,
		Args: exactArgs("JOBID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.JobID = args[0]
			opts.Interval, opts.Timeout, opts.Transient, opts.OnError, opts.Unreachable = wf.Interval, wf.Timeout, wf.Transient, wf.OnError, wf.Unreachable
			return waitRun(cmd.Context(), opts)
		},
	}
	wf.add(cmd, "leave")
	cmd.Flags().BoolVar(&opts.Complete, "complete", false, "complete the job once Transferred (make the files appear)")
	return cmd
}

func waitRun(ctx context.Context, opts *WaitOptions) error {
	if err := checkJobID(opts.JobID); err != nil {
		return err
	}
	id := normalizeJobID(opts.JobID)
	f := opts.f
	wf := waitFlags{Interval: opts.Interval, Timeout: opts.Timeout, Transient: opts.Transient, OnError: opts.OnError, Unreachable: opts.Unreachable}
	pol, err := wf.policy(f)
	if err != nil {
		return err
	}
	if !opts.Complete {
		pol.OnTransferred = bitsprov.TransferredLeave
	}
	out := newOutput(f.IO, f.Conn.Output, false)
	prog := newHostProgress(f, len(f.Conn.Hosts) > 1 || f.Conn.Inventory != "")
	err = f.forEachHost(ctx, out, func(ctx context.Context, s *session) error {
		rec, err := waitJob(ctx, f, s, id, pol, prog.update)
		prog.done(s.Endpoint.Name, err)
		if rec.Job != nil {
			if eerr := out.emit(s.Endpoint.Name, rec); eerr != nil && err == nil {
				err = eerr
			}
		}
		return err
	})
	prog.close()
	return flushWith(out, renderJobDetail, err)
}

// waitJob runs the poller on one job and turns its outcome into a record
// and an error carrying the exit code.
func waitJob(ctx context.Context, f *Factory, s *session, id string, pol bitsprov.Policy, show func(host, id string, j *bitsprov.Job)) (jobRecord, error) {
	start := f.Clock.Now()
	warned := false
	notes := newUnreachableNotes(f)
	pol.OnRetry = func(err error) { notes.failed(s.Endpoint.Name, id, err) }
	pol.Progress = func(j *bitsprov.Job) {
		notes.answered(s.Endpoint.Name)
		show(s.Endpoint.Name, id, j)
		if j.State == bitsprov.StateSuspended && !warned {
			warned = true
			f.IO.Warnf("%s: job %s is suspended; waiting until it is resumed", s.Endpoint.Name, id)
		}
	}
	oc, err := s.Bits.Wait(ctx, id, pol)
	rec := outcomeJobRecord(s.Endpoint.Name, oc, f.Clock.Now().Sub(start))
	if err != nil {
		if ctx.Err() != nil {
			// Interrupted: the job goes on without us; say how to
			// pick it up again.
			state := "unknown state"
			if oc != nil && oc.Job != nil {
				state = oc.Final.String()
			}
			return rec, fmt.Errorf("interrupted; job %s is left on the host (%s): follow it with 'bitsremote wait %s --complete': %w", id, state, id, err)
		}
		return rec, err
	}
	return rec, outcomeError(s.Endpoint.Name, id, oc)
}

// unreachableNotes says on stderr that a host does not answer while jobs
// are waited for on it: at the first failure, then every
// unreachableNoteEvery, so that a wait without --timeout is not silent.
// A job read from the host ends the stretch. One note covers the host,
// whichever of its jobs the failed poll was for. It is safe for
// concurrent use (a fleet waits on hosts and jobs at once).
type unreachableNotes struct {
	f    *Factory
	mu   sync.Mutex
	last map[string]time.Time // host: time of the last note this stretch
}

func newUnreachableNotes(f *Factory) *unreachableNotes {
	return &unreachableNotes{f: f, last: map[string]time.Time{}}
}

// failed notes that a poll of job id on host failed with err, a host error
// the wait rides out.
func (n *unreachableNotes) failed(host, id string, err error) {
	n.mu.Lock()
	now := n.f.Clock.Now()
	last, ok := n.last[host]
	if ok && now.Sub(last) < unreachableNoteEvery {
		n.mu.Unlock()
		return
	}
	n.last[host] = now
	n.mu.Unlock()
	// The error names the host this note starts with.
	n.f.warnf("%s: host unreachable (%s); still waiting for job %s, Ctrl-C to stop", host,
		strings.TrimPrefix(err.Error(), host+": "), id)
}

// answered ends host's stretch of failures.
func (n *unreachableNotes) answered(host string) {
	n.mu.Lock()
	delete(n.last, host)
	n.mu.Unlock()
}

// outcomeJobRecord is the job as the wait left it, with the outcome. The
// job's state is the final one (Acknowledged after Complete).
func outcomeJobRecord(host string, oc *bitsprov.Outcome, elapsed time.Duration) jobRecord {
	rec := jobRecord{Host: host}
	if oc == nil {
		return rec
	}
	if oc.Job != nil {
		j := *oc.Job
		j.State = oc.Final
		rec.Job = &j
	}
	rec.Error = jobErrorRecord(oc.Error)
	o := &outcomeRecord{
		Result:  oc.Action.String(),
		Elapsed: elapsed.Round(time.Millisecond).Seconds(),
		Polls:   oc.Polls,
		Detail:  oc.Reason,
	}
	if oc.Err != nil {
		// The reason says which call failed; the error says why.
		o.Detail += ": " + strings.TrimPrefix(oc.Err.Error(), host+": ")
	}
	if oc.Code != bitsprov.CodeOK {
		o.ReturnCode = fmt.Sprintf("0x%08X", uint32(oc.Code))
		o.ReturnCodeName = oc.Code.String()
	}
	rec.Outcome = o
	return rec
}

// outcomeError maps how a wait ended to the command's result: success
// when the job was transferred (completed or left for the caller), exit 1
// when it failed, was cancelled or vanished, exit 4 at the timeout, and a
// failed Complete or Cancel exits as its error's class says (5 for a
// ReturnValue, 4 for a lost connection).
func outcomeError(host, id string, oc *bitsprov.Outcome) error {
	if oc.Action == bitsprov.ResultFailed && oc.Err != nil {
		// The call's error names the host this message starts with.
		msg := fmt.Sprintf("%s: job %s: %s: %s", host, id, oc.Reason, strings.TrimPrefix(oc.Err.Error(), host+": "))
		return &reasonError{msg: msg, err: oc.Err}
	}
	switch oc.Action {
	case bitsprov.ResultCompleted:
		return nil
	case bitsprov.ResultLeft:
		if oc.Final == bitsprov.StateTransferred {
			return nil
		}
	case bitsprov.ResultTimedOut:
		// The reason quotes the host's last error, which names the host
		// this message starts with.
		reason := strings.ReplaceAll(oc.Reason, "unreachable: "+host+": ", "unreachable: ")
		return &exitError{code: ExitConnection, err: fmt.Errorf("%s: job %s: %s", host, id, reason)}
	}
	reason := oc.Reason
	if reason == "" {
		reason = strings.ToLower(oc.Action.String())
	}
	return &JobFailedError{Host: host, JobID: id, Reason: reason}
}

// reasonError is err told in other words (msg); it matches everything err
// does, so its exit code is err's.
type reasonError struct {
	msg string
	err error
}

func (e *reasonError) Error() string { return e.msg }
func (e *reasonError) Unwrap() error { return e.err }

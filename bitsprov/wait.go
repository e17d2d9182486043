package bitsprov

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
)

// JobSource is what the poller needs of a host; *Client implements it, and
// tests substitute a fake.
type JobSource interface {
	Job(ctx context.Context, jobID string) (*Job, error)
	SetJobState(ctx context.Context, jobID string, a JobAction) (Code, error)
	GetError(ctx context.Context, jobID string, languageID uint32) (*JobError, error)
}

// Clock is the poller's time source, injectable so that tests do not wait.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has elapsed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// TransferredAction says what the poller does when the job is Transferred.
type TransferredAction int

// Actions on Transferred.
const (
	// TransferredComplete completes the job (SetJobState 1) so the files
	// appear, as the PowerShell loop does.
	TransferredComplete TransferredAction = iota
	// TransferredLeave returns without completing.
	TransferredLeave
)

// TransientAction says what the poller does on TransientError.
type TransientAction int

// Actions on TransientError.
const (
	// TransientCancel cancels a job in TransientError, as the PowerShell
	// loop does (it stops on states 4, 5 and 6 and cancels on 4 and 5),
	// whatever OnError says: OnError is about jobs in Error, which BITS
	// has given up on, and leaving a job that BITS keeps retrying would
	// leave it transferring behind the caller's back.
	TransientCancel TransientAction = iota
	// TransientWait rides the error out: BITS retries by itself, and the
	// job either makes progress or turns to Error when its
	// NoProgressTimeout runs out. The poller also gives up (and applies
	// OnError) when the job has stayed in TransientError for longer than
	// its NoProgressTimeout, or at the deadline.
	TransientWait
)

// ErrorAction says what the poller does on Error.
type ErrorAction int

// Actions on Error.
const (
	// ErrorCancel cancels the failed job, as the PowerShell loop does.
	ErrorCancel ErrorAction = iota
	// ErrorLeave leaves the failed job on the host for inspection.
	ErrorLeave
)

// Policy shapes a Wait. The zero Policy is the Microsoft how-to loop:
// poll every second, complete on Transferred, cancel on Error or
// TransientError, no deadline.
type Policy struct {
	// Interval is the first pause between polls (default 1 s).
	Interval time.Duration
	// Backoff multiplies the pause after every poll (values <= 1: none),
	// up to MaxInterval (default 30 s).
	Backoff     float64
	MaxInterval time.Duration
	// Timeout, relative to the start of the Wait, and Deadline, absolute,
	// bound the wait; the earlier wins. Zero means none. At the deadline
	// the poller polls once more and then returns ResultTimedOut.
	Timeout  time.Duration
	Deadline time.Time
	// CancelOnTimeout cancels the job when the wait times out.
	CancelOnTimeout bool

	OnTransferred TransferredAction
	OnTransient   TransientAction
	OnError       ErrorAction

	// SkipErrorDetails stops the poller from calling GetError when the job
	// is in Error or TransientError.
	SkipErrorDetails bool
	// LanguageID is passed to GetError; 0 means DefaultLanguageID.
	LanguageID uint32

	// UnseenTimeout, when positive, ends a wait in which the job has not
	// been read once for this long since the wait began, with
	// ResultTimedOut: a host that never answers (or the wrong host)
	// would otherwise hold a wait without Timeout for ever. Once the job
	// has been seen, only Timeout and Deadline apply: a host restarting
	// mid-transfer is ridden out.
	UnseenTimeout time.Duration

	// Progress, if set, is called with every job the poller reads.
	Progress func(*Job)
	// OnRetry, if set, is called with every host error the poller rides
	// out (a failed poll, or a Complete or Cancel it will send again), so
	// that a caller can say why nothing seems to happen.
	OnRetry func(err error)
	// Clock, if set, replaces the real clock.
	Clock Clock
}

// Result says how a Wait ended.
type Result int

// Results of a Wait.
const (
	// ResultCompleted: the job was Transferred and the poller completed it.
	ResultCompleted Result = iota + 1
	// ResultCancelled: the job failed (or timed out with CancelOnTimeout)
	// and the poller cancelled it.
	ResultCancelled
	// ResultLeft: the job reached a state the policy says to leave as is
	// (Transferred with TransferredLeave, Error with ErrorLeave).
	ResultLeft
	// ResultTimedOut: the deadline passed first; the job was left.
	ResultTimedOut
	// ResultGone: the job left the queue without us (someone else
	// completed or cancelled it).
	ResultGone
	// ResultFailed: the poller's Complete or Cancel failed (Outcome.Err
	// says why); the job is left in the state Final names.
	ResultFailed
)

var resultNames = [...]string{"", "Completed", "Cancelled", "Left", "TimedOut", "Gone", "Failed"}

// String returns "Completed", "Cancelled", "Left", "TimedOut", "Gone" or
// "Failed".
func (r Result) String() string {
	if r > 0 && int(r) < len(resultNames) {
		return resultNames[r]
	}
	return fmt.Sprintf("Result(%d)", int(r))
}

// MarshalText renders the name.
func (r Result) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// Outcome is what a Wait saw and did.
type Outcome struct {
	// Job is the last job read (nil if none could be read).
	Job *Job `json:"job"`
	// Final is the job's state when the wait ended: Acknowledged after
	// Complete, Cancelled after Cancel, else the last state seen.
	Final State `json:"final"`
	// Action is what happened.
	Action Result `json:"action"`
	// Code is the ReturnValue of the Complete or Cancel the poller made
	// (for example BG_S_PARTIAL_COMPLETE).
	Code Code `json:"code"`
	// Error is GetError's report for a job in Error or TransientError.
	Error *JobError `json:"error,omitempty"`
	// Polls counts the Get calls made, failed ones included.
	Polls int `json:"polls"`
	// Reason explains the outcome in a sentence.
	Reason string `json:"reason"`
	// LastErr is the last retried host error, if the wait ended while the
	// host was unreachable.
	LastErr error `json:"-"`
	// Err is the Complete or Cancel's error when Action is ResultFailed
	// (or ResultTimedOut after a failed CancelOnTimeout); Wait returns it
	// too.
	Err error `json:"-"`
}

// Wait polls the job until the policy says to stop, then completes,
// cancels or leaves it. It reproduces the PowerShell loop of Microsoft's
// how-to (while the state is not 4, 5 or 6: sleep and Get; then complete
// on 6, cancel on 4 and 5) and adds backoff, a deadline, riding out
// transient errors, error details and progress.
//
// Connection failures, 502/503/504 and w:TimedOut while polling are
// retried until the deadline, so a host restarting does not break a wait.
// The error is non-nil only when the poller could not do its job: ctx
// ended, the host refused us (authentication, a fault), the job was never
// found, or the Complete/Cancel failed (Action ResultFailed, Err the
// error); the Outcome is then what was known so far.
func Wait(ctx context.Context, src JobSource, jobID string, p Policy) (*Outcome, error) {
	w := newWaiter(src, jobID, p)
	return w.run(ctx)
}

// Wait is Wait with c as the job source.
func (c *Client) Wait(ctx context.Context, jobID string, p Policy) (*Outcome, error) {
	return Wait(ctx, c, jobID, p)
}

type waiter struct {
	src      JobSource
	id       string
	p        Policy
	clock    Clock
	start    time.Time
	deadline time.Time // zero: none
	out      Outcome
	// transientSince is when the current TransientError stretch began.
	transientSince time.Time
	seen           bool
}

func newWaiter(src JobSource, id string, p Policy) *waiter {
	if p.Interval <= 0 {
		p.Interval = time.Second
	}
	if p.MaxInterval <= 0 {
		p.MaxInterval = 30 * time.Second
	}
	if p.MaxInterval < p.Interval {
		p.MaxInterval = p.Interval
	}
	if p.LanguageID == 0 {
		p.LanguageID = DefaultLanguageID
	}
	w := &waiter{src: src, id: id, p: p, clock: p.Clock}
	if w.clock == nil {
		w.clock = realClock{}
	}
	now := w.clock.Now()
	w.start = now
	if p.Timeout > 0 {
		w.deadline = now.Add(p.Timeout)
	}
	if !p.Deadline.IsZero() && (w.deadline.IsZero() || p.Deadline.Before(w.deadline)) {
		w.deadline = p.Deadline
	}
	return w
}

func (w *waiter) expired() bool {
	return !w.deadline.IsZero() && !w.clock.Now().Before(w.deadline)
}

func (w *waiter) run(ctx context.Context) (*Outcome, error) {
	if w.id == "" {
		return &w.out, errors.New("bitsprov: wait: empty JobId")
	}
	interval := w.p.Interval
	for {
		if err := ctx.Err(); err != nil {
			return &w.out, fmt.Errorf("wait for job %s: %w", w.id, err)
		}
		done, err := w.poll(ctx)
		if done || err != nil {
			return &w.out, err
		}
		if w.expired() {
			return w.timeout(ctx)
		}
		if w.unseenFor() {
			return w.neverSeen()
		}
		pause := interval
		if !w.deadline.IsZero() {
			if left := w.deadline.Sub(w.clock.Now()); left < pause {
				pause = left
			}
		}
		if !w.seen && w.p.UnseenTimeout > 0 {
			if left := w.start.Add(w.p.UnseenTimeout).Sub(w.clock.Now()); left < pause {
				pause = left
			}
		}
		select {
		case <-ctx.Done():
			return &w.out, fmt.Errorf("wait for job %s: %w", w.id, ctx.Err())
		case <-w.clock.After(pause):
		}
		if w.p.Backoff > 1 {
			interval = time.Duration(float64(interval) * w.p.Backoff)
			if interval > w.p.MaxInterval {
				interval = w.p.MaxInterval
			}
		}
	}
}

// poll reads the job once and acts on its state; done reports that the
// wait is over.
func (w *waiter) poll(ctx context.Context) (done bool, err error) {
	w.out.Polls++
	rctx, cancel := w.readContext(ctx)
	j, err := w.src.Job(rctx, w.id)
	cut := ctx.Err() == nil && rctx.Err() != nil
	cancel()
	if err != nil {
		switch {
		case errors.Is(err, ErrNotFound) && w.seen:
			w.out.Action = ResultGone
			w.out.Reason = fmt.Sprintf("job left the queue (completed or cancelled elsewhere) after state %v", w.out.Final)
			return true, nil
		case cut:
			// The read outlived the wait's deadline (or, before the job
			// was seen, UnseenTimeout): a host that does not answer, which
			// run now reports as the timeout it is.
			w.out.LastErr = err
			return false, nil
		case ctx.Err() == nil && Retryable(err):
			w.out.LastErr = err
			if w.p.OnRetry != nil {
				w.p.OnRetry(err)
			}
			return false, nil
		}
		// The source's errors name the host, the operation and the job.
		return true, err
	}
	w.seen = true
	w.out.LastErr = nil
	w.out.Job = j
	w.out.Final = j.State
	if w.p.Progress != nil {
		w.p.Progress(j)
	}
	switch j.State {
	case StateTransferred:
		if w.p.OnTransferred == TransferredLeave {
			w.out.Action = ResultLeft
			w.out.Reason = "job transferred; left for the caller to complete"
			return true, nil
		}
		return true, w.act(ctx, ActionComplete, "job transferred", " and completed")
	case StateError:
		w.details(ctx)
		return true, w.failed(ctx, "job failed")
	case StateTransientError:
		now := w.clock.Now()
		if w.transientSince.IsZero() {
			w.transientSince = now
			w.details(ctx)
		}
		if w.p.OnTransient == TransientCancel {
			return true, w.act(ctx, ActionCancel, w.why("job hit a transient error"), "; cancelled")
		}
		// BITS itself turns the job to Error when NoProgressTimeout runs
		// out; this is the backstop for a host that does not. With a
		// timeout of 0 BITS never retries, so one interval is enough.
		stuck := now.Sub(w.transientSince)
		if stuck >= j.NoProgressTimeout && (j.NoProgressTimeout > 0 || stuck > 0) {
			return true, w.failed(ctx, fmt.Sprintf("job stayed in TransientError for %v, reaching its NoProgressTimeout of %v", stuck, j.NoProgressTimeout))
		}
		return false, nil
	case StateAcknowledged, StateCancelled:
		w.out.Action = ResultGone
		w.out.Reason = fmt.Sprintf("job is already %v", j.State)
		return true, nil
	}
	// Queued, Connecting, Transferring, Suspended: keep waiting, as the
	// PowerShell loop does. A transient error the job recovered from is
	// no longer the outcome's error.
	w.transientSince = time.Time{}
	w.out.Error = nil
	w.out.Reason = ""
	return false, nil
}

// details records GetError's report; a failure to get it is noted in the
// reason but does not change the outcome.
func (w *waiter) details(ctx context.Context) {
	if w.p.SkipErrorDetails {
		return
	}
	je, err := w.src.GetError(ctx, w.id, w.p.LanguageID)
	if err != nil {
		w.out.Error = nil
		w.out.Reason = fmt.Sprintf("(error details unavailable: %v)", err)
		return
	}
	w.out.Error = je
	w.out.Reason = ""
}

// why is what happened followed by the job's error details, or by why
// they are unavailable.
func (w *waiter) why(what string) string {
	if w.out.Error != nil {
		return what + ": " + w.out.Error.Error()
	} else if w.out.Reason != "" {
		return what + " " + w.out.Reason
	}
	return what
}

// failed applies OnError to a job that failed.
func (w *waiter) failed(ctx context.Context, what string) error {
	why := w.why(what)
	if w.p.OnError == ErrorLeave {
		w.out.Action = ResultLeft
		w.out.Reason = why + "; left on the host for inspection"
		return nil
	}
	return w.act(ctx, ActionCancel, why, "; cancelled")
}

// readGrace is how long a read of the job may run past the wait's
// deadline: enough for the read that lands on the deadline to answer
// from a host that is merely slow.
const readGrace = time.Second

// readContext bounds one read of the job by the wait's deadline (and,
// while the job is unseen, by UnseenTimeout), plus readGrace. Without it
// a host that stops answering held a "--timeout 30s" wait for the read's
// own timeouts and retries: minutes. The bound is the time left by the
// wait's clock, spent in real time.
func (w *waiter) readContext(ctx context.Context) (context.Context, context.CancelFunc) {
	end := w.deadline
	if !w.seen && w.p.UnseenTimeout > 0 {
		if u := w.start.Add(w.p.UnseenTimeout); end.IsZero() || u.Before(end) {
			end = u
		}
	}
	if end.IsZero() {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, max(end.Sub(w.clock.Now()), 0)+readGrace)
}

// unseenFor reports that UnseenTimeout has passed without the job read
// once.
func (w *waiter) unseenFor() bool {
	return !w.seen && w.p.UnseenTimeout > 0 && !w.clock.Now().Before(w.start.Add(w.p.UnseenTimeout))
}

// neverSeen ends a wait whose job could not be read once in
// UnseenTimeout; the job, if it exists, is left as it is.
func (w *waiter) neverSeen() (*Outcome, error) {
	w.out.Action = ResultTimedOut
	w.out.Reason = fmt.Sprintf("job not seen in the %v since the wait began; host unreachable: %v", w.p.UnseenTimeout, w.out.LastErr)
	return &w.out, nil
}

func (w *waiter) timeout(ctx context.Context) (*Outcome, error) {
	why := fmt.Sprintf("deadline passed with the job %v", w.out.Final)
	switch {
	case w.out.Job == nil && w.out.LastErr != nil:
		why = fmt.Sprintf("deadline passed; host unreachable: %v", w.out.LastErr)
	case w.out.LastErr != nil:
		why += fmt.Sprintf(" when last seen; host then unreachable: %v", w.out.LastErr)
	}
	if w.p.CancelOnTimeout {
		if err := w.act(ctx, ActionCancel, why, "; cancelled"); err != nil {
			w.out.Action = ResultTimedOut
			return &w.out, err
		}
		return &w.out, nil
	}
	w.out.Action = ResultTimedOut
	w.out.Reason = why
	return &w.out, nil
}

// act completes or cancels the job; the reason is why+done on success. Host errors are retried like polls
// (until the deadline); a not-found answer on a retry means the first
// attempt went through and the job already left the queue.
func (w *waiter) act(ctx context.Context, a JobAction, why, done string) error {
	result, final := ResultCompleted, StateAcknowledged
	if a == ActionCancel {
		result, final = ResultCancelled, StateCancelled
	}
	interval := w.p.Interval
	for attempt := 0; ; attempt++ {
		code, err := w.src.SetJobState(ctx, w.id, a)
		if err == nil {
			w.out.Action, w.out.Final, w.out.Code = result, final, code
			w.out.Reason = why + done
			if code != 0 {
				w.out.Reason += " (" + code.String() + ")"
			}
			return nil
		}
		if attempt > 0 && errors.Is(err, ErrNotFound) {
			w.out.Action, w.out.Final = result, final
			w.out.Reason = why + done + " (the job had already left the queue when the call was retried)"
			return nil
		}
		if ctx.Err() != nil || !Retryable(err) || w.expired() {
			w.out.Action, w.out.Err = ResultFailed, err
			w.out.Reason = why + "; but " + a.String() + " failed"
			return err
		}
		w.out.LastErr = err
		if w.p.OnRetry != nil {
			w.p.OnRetry(err)
		}
		select {
		case <-ctx.Done():
			err := fmt.Errorf("wait for job %s: %s: %w", w.id, a, ctx.Err())
			w.out.Action, w.out.Err = ResultFailed, err
			w.out.Reason = why + "; but " + a.String() + " was interrupted"
			return err
		case <-w.clock.After(interval):
		}
	}
}

// Retryable reports whether err is a passing host condition worth
// retrying: the connection refused, reset or timed out, a 502/503/504
// from the host or a proxy, a kept-alive connection the host closed, a w:TimedOut or w:InternalError fault, a
// reply cut short, garbled or not ours, or any failure that leaves open
// whether the call was carried out (wsman.ErrAmbiguous: the poller's
// Complete and Cancel are safe to repeat, since a job already completed
// answers not-found). Authentication failures and other faults are not.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	if wsman.IsTimedOut(err) || wsman.IsAmbiguous(err) {
		return true
	}
	if errors.Is(err, wsman.ErrProtocol) || errors.Is(err, transport.ErrUnsealedReply) {
		return true
	}
	var he *wsman.HTTPError
	if errors.As(err, &he) {
		switch he.StatusCode {
		case 502, 503, 504:
			return true
		}
		return false
	}
	var f *wsman.Fault
	if errors.As(err, &f) {
		return f.Subcode == "InternalError"
	}
	// IsConnectionClosed covers EOF, resets, broken pipes and net/http's
	// "server closed idle connection" (a kept-alive connection the host
	// dropped, which only its message identifies).
	if transport.IsConnectionClosed(err) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

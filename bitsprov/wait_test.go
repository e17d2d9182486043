package bitsprov

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/bitsremote/bitsremote/wsman"
)

// fakeClock advances only when the poller sleeps, so tests take no time.
type fakeClock struct {
	now    time.Time
	sleeps []time.Duration
}

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func (c *fakeClock) Now() time.Time { return c.now }

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

// step is one answer to a Get: a state, or an error.
type step struct {
	state State
	err   error
}

func st(states ...State) []step {
	s := make([]step, len(states))
	for i, x := range states {
		s[i] = step{state: x}
	}
	return s
}

// fakeSource answers Gets from a script (the last step repeats) and
// records the actions taken.
type fakeSource struct {
	steps       []step
	gets        int
	actions     []JobAction
	actionErrs  []error // answers to SetJobState in order; nil after the end
	actionCode  Code
	getErrors   int
	jobError    *JobError
	getErrorErr error
	npt         time.Duration
}

const fakeID = "{11111111-2222-3333-4444-555555555555}"

func (f *fakeSource) Job(ctx context.Context, id string) (*Job, error) {
	if id != fakeID {
		return nil, fmt.Errorf("unexpected id %s", id)
	}
	i := f.gets
	if i >= len(f.steps) {
		i = len(f.steps) - 1
	}
	f.gets++
	s := f.steps[i]
	if s.err != nil {
		return nil, s.err
	}
	return &Job{JobID: id, State: s.state, BytesTransferred: uint64(f.gets), NoProgressTimeout: f.npt}, nil
}

func (f *fakeSource) SetJobState(ctx context.Context, id string, a JobAction) (Code, error) {
	n := len(f.actions)
	f.actions = append(f.actions, a)
	if n < len(f.actionErrs) && f.actionErrs[n] != nil {
		return 0, f.actionErrs[n]
	}
	return f.actionCode, nil
}

func (f *fakeSource) GetError(ctx context.Context, id string, lang uint32) (*JobError, error) {
	if lang != DefaultLanguageID {
		return nil, fmt.Errorf("language %d", lang)
	}
	f.getErrors++
	return f.jobError, f.getErrorErr
}

var (
	errRefused  = &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	err503      = &wsman.HTTPError{Host: "h", Operation: "Get", StatusCode: 503, Status: "503 Service Unavailable"}
	errTimedOut = &wsman.Fault{Host: "h", Operation: "Get", Code: "Receiver", SubcodeNS: wsman.NsWSMan, Subcode: "TimedOut",
		Reason: "The WS-Management service cannot complete the operation within the time specified in OperationTimeout."}
	err401             = &wsman.HTTPError{Host: "h", Operation: "Get", StatusCode: 401, Kind: wsman.ErrAuth}
	errNotFound        = &NotFoundError{Host: "h", Op: "Get", Key: fakeID, Err: &wsman.Fault{Subcode: "DestinationUnreachable", SubcodeNS: wsman.NsAddressing}}
	errCancelRefused   = &ReturnError{Method: "SetJobState", Code: 0x80200002}
	errCompleteRefused = &ReturnError{Method: "SetJobState", Code: 0x80200003}
	httpErr404         = &JobError{Context: ContextRemoteFile, Code: 0x80190194, Description: "The requested URL does not exist on the server."}
)

func TestWait(t *testing.T) {
	tests := []struct {
		name        string
		src         fakeSource
		policy      Policy
		want        Outcome
		wantActions []JobAction
		wantSleeps  []time.Duration
		wantGetErrs int
		wantErr     error
	}{
		{
			name:        "PowerShell loop, final state 6: complete",
			src:         fakeSource{steps: st(StateQueued, StateConnecting, StateTransferring, StateTransferring, StateTransferred)},
			want:        Outcome{Final: StateAcknowledged, Action: ResultCompleted, Polls: 5, Reason: "job transferred and completed"},
			wantActions: []JobAction{ActionComplete},
			wantSleeps:  []time.Duration{time.Second, time.Second, time.Second, time.Second},
		},
		{
			name:        "PowerShell loop, final state 4: cancel with details",
			src:         fakeSource{steps: st(StateTransferring, StateError), jobError: httpErr404},
			want:        Outcome{Final: StateCancelled, Action: ResultCancelled, Polls: 2, Error: httpErr404, Reason: "job failed: BG_E_HTTP_ERROR_404 (0x80190194) in RemoteFile: The requested URL does not exist on the server.; cancelled"},
			wantActions: []JobAction{ActionCancel},
			wantSleeps:  []time.Duration{time.Second},
			wantGetErrs: 1,
		},
		{
			name:        "PowerShell loop, final state 5: cancel",
			src:         fakeSource{steps: st(StateConnecting, StateTransientError), jobError: httpErr404},
			want:        Outcome{Final: StateCancelled, Action: ResultCancelled, Polls: 2, Error: httpErr404, Reason: "job hit a transient error: BG_E_HTTP_ERROR_404 (0x80190194) in RemoteFile: The requested URL does not exist on the server.; cancelled"},
			wantActions: []JobAction{ActionCancel},
			wantSleeps:  []time.Duration{time.Second},
			wantGetErrs: 1,
		},
		{
			name:        "transient cancel cancels even when errors are left",
			src:         fakeSource{steps: st(StateConnecting, StateTransientError), jobError: httpErr404},
			policy:      Policy{OnTransient: TransientCancel, OnError: ErrorLeave},
			want:        Outcome{Final: StateCancelled, Action: ResultCancelled, Polls: 2, Error: httpErr404, Reason: "job hit a transient error: BG_E_HTTP_ERROR_404 (0x80190194) in RemoteFile: The requested URL does not exist on the server.; cancelled"},
			wantActions: []JobAction{ActionCancel},
			wantSleeps:  []time.Duration{time.Second},
			wantGetErrs: 1,
		},
		{
			name:        "ride out a transient error",
			src:         fakeSource{steps: st(StateTransferring, StateTransientError, StateTransientError, StateTransferring, StateTransferred), jobError: httpErr404, npt: time.Hour},
			policy:      Policy{OnTransient: TransientWait},
			want:        Outcome{Final: StateAcknowledged, Action: ResultCompleted, Polls: 5, Reason: "job transferred and completed"},
			wantActions: []JobAction{ActionComplete},
			wantSleeps:  []time.Duration{time.Second, time.Second, time.Second, time.Second},
			wantGetErrs: 1,
		},
		{
			name:        "transient error outlasts NoProgressTimeout",
			src:         fakeSource{steps: st(StateTransientError), jobError: httpErr404, npt: 3 * time.Second},
			policy:      Policy{OnTransient: TransientWait},
			want:        Outcome{Final: StateCancelled, Action: ResultCancelled, Polls: 4, Error: httpErr404, Reason: "job stayed in TransientError for 3s, reaching its NoProgressTimeout of 3s: BG_E_HTTP_ERROR_404 (0x80190194) in RemoteFile: The requested URL does not exist on the server.; cancelled"},
			wantActions: []JobAction{ActionCancel},
			wantSleeps:  []time.Duration{time.Second, time.Second, time.Second},
			wantGetErrs: 1,
		},
		{
			name:        "leave a failed job, details unavailable",
			src:         fakeSource{steps: st(StateError), getErrorErr: errors.New("boom")},
			policy:      Policy{OnError: ErrorLeave},
			want:        Outcome{Final: StateError, Action: ResultLeft, Polls: 1, Reason: "job failed (error details unavailable: boom); left on the host for inspection"},
			wantGetErrs: 1,
		},
		{
			name:   "leave transferred, skip details",
			src:    fakeSource{steps: st(StateTransferred)},
			policy: Policy{OnTransferred: TransferredLeave, SkipErrorDetails: true},
			want:   Outcome{Final: StateTransferred, Action: ResultLeft, Polls: 1, Reason: "job transferred; left for the caller to complete"},
		},
		{
			name:       "deadline with backoff: last poll at the deadline",
			src:        fakeSource{steps: st(StateTransferring)},
			policy:     Policy{Interval: time.Second, Backoff: 2, MaxInterval: 10 * time.Second, Timeout: 5 * time.Second},
			want:       Outcome{Final: StateTransferring, Action: ResultTimedOut, Polls: 4, Reason: "deadline passed with the job Transferring"},
			wantSleeps: []time.Duration{time.Second, 2 * time.Second, 2 * time.Second},
		},
		{
			name:        "deadline, cancel on timeout",
			src:         fakeSource{steps: st(StateSuspended)},
			policy:      Policy{Deadline: t0.Add(2 * time.Second), Timeout: time.Hour, CancelOnTimeout: true},
			want:        Outcome{Final: StateCancelled, Action: ResultCancelled, Polls: 3, Reason: "deadline passed with the job Suspended; cancelled"},
			wantActions: []JobAction{ActionCancel},
			wantSleeps:  []time.Duration{time.Second, time.Second},
		},
		{
			name:        "host restarting: refused, 503, w:TimedOut are retried",
			src:         fakeSource{steps: []step{{state: StateTransferring}, {err: errRefused}, {err: err503}, {err: fmt.Errorf("wrapped: %w", errTimedOut)}, {state: StateTransferred}}},
			want:        Outcome{Final: StateAcknowledged, Action: ResultCompleted, Polls: 5, Reason: "job transferred and completed"},
			wantActions: []JobAction{ActionComplete},
			wantSleeps:  []time.Duration{time.Second, time.Second, time.Second, time.Second},
		},
		{
			name:       "host down until the deadline",
			src:        fakeSource{steps: []step{{err: errRefused}}},
			policy:     Policy{Timeout: 2 * time.Second},
			want:       Outcome{Action: ResultTimedOut, Polls: 3, Reason: "deadline passed; host unreachable: dial tcp: connect: connection refused", LastErr: errRefused},
			wantSleeps: []time.Duration{time.Second, time.Second},
		},
		{
			name:       "host never answers: give up at UnseenTimeout",
			src:        fakeSource{steps: []step{{err: errRefused}}},
			policy:     Policy{Interval: 2 * time.Second, UnseenTimeout: 5 * time.Second},
			want:       Outcome{Action: ResultTimedOut, Polls: 4, Reason: "job not seen in the 5s since the wait began; host unreachable: dial tcp: connect: connection refused", LastErr: errRefused},
			wantSleeps: []time.Duration{2 * time.Second, 2 * time.Second, time.Second},
		},
		{
			name:       "UnseenTimeout does not apply once the job was seen",
			src:        fakeSource{steps: []step{{state: StateTransferring}, {err: errRefused}, {err: errRefused}, {err: errRefused}, {state: StateTransferred}}},
			policy:     Policy{Interval: 2 * time.Second, UnseenTimeout: 3 * time.Second, OnTransferred: TransferredLeave},
			want:       Outcome{Final: StateTransferred, Action: ResultLeft, Polls: 5, Reason: "job transferred; left for the caller to complete"},
			wantSleeps: []time.Duration{2 * time.Second, 2 * time.Second, 2 * time.Second, 2 * time.Second},
		},
		{
			name:    "authentication failure is not retried",
			src:     fakeSource{steps: []step{{err: err401}}},
			want:    Outcome{Polls: 1},
			wantErr: wsman.ErrAuth,
		},
		{
			name:    "never found",
			src:     fakeSource{steps: []step{{err: errNotFound}}},
			want:    Outcome{Polls: 1},
			wantErr: ErrNotFound,
		},
		{
			name:       "gone after being seen",
			src:        fakeSource{steps: []step{{state: StateTransferring}, {err: errNotFound}}},
			want:       Outcome{Final: StateTransferring, Action: ResultGone, Polls: 2, Reason: "job left the queue (completed or cancelled elsewhere) after state Transferring"},
			wantSleeps: []time.Duration{time.Second},
		},
		{
			name: "already acknowledged",
			src:  fakeSource{steps: st(StateAcknowledged)},
			want: Outcome{Final: StateAcknowledged, Action: ResultGone, Polls: 1, Reason: "job is already Acknowledged"},
		},
		{
			name:        "partial complete code",
			src:         fakeSource{steps: st(StateTransferred), actionCode: CodePartialComplete},
			want:        Outcome{Final: StateAcknowledged, Action: ResultCompleted, Code: CodePartialComplete, Polls: 1, Reason: "job transferred and completed (BG_S_PARTIAL_COMPLETE)"},
			wantActions: []JobAction{ActionComplete},
		},
		{
			name:        "complete retried across a restart; not found means it went through",
			src:         fakeSource{steps: st(StateTransferred), actionErrs: []error{errRefused, &ReturnError{Method: "SetJobState", Code: 0x80200001}}},
			want:        Outcome{Final: StateAcknowledged, Action: ResultCompleted, Polls: 1, Reason: "job transferred and completed (the job had already left the queue when the call was retried)", LastErr: errRefused},
			wantActions: []JobAction{ActionComplete, ActionComplete},
			wantSleeps:  []time.Duration{time.Second},
		},
		{
			name:        "cancel refused",
			src:         fakeSource{steps: st(StateError), actionErrs: []error{errCancelRefused}},
			policy:      Policy{SkipErrorDetails: true},
			want:        Outcome{Final: StateError, Action: ResultFailed, Polls: 1, Reason: "job failed; but Cancel failed", Err: errCancelRefused},
			wantActions: []JobAction{ActionCancel},
			wantErr:     ErrInvalidState,
		},
		{
			name:        "complete refused",
			src:         fakeSource{steps: st(StateTransferred), actionErrs: []error{errCompleteRefused}},
			want:        Outcome{Final: StateTransferred, Action: ResultFailed, Polls: 1, Reason: "job transferred; but Complete failed", Err: errCompleteRefused},
			wantActions: []JobAction{ActionComplete},
			wantErr:     errCompleteRefused,
		},
		{
			name:        "cancel on timeout refused stays a timeout",
			src:         fakeSource{steps: st(StateTransferring), actionErrs: []error{errCancelRefused}},
			policy:      Policy{Timeout: 2 * time.Second, CancelOnTimeout: true},
			want:        Outcome{Final: StateTransferring, Action: ResultTimedOut, Polls: 3, Reason: "deadline passed with the job Transferring; but Cancel failed", Err: errCancelRefused},
			wantActions: []JobAction{ActionCancel},
			wantSleeps:  []time.Duration{time.Second, time.Second},
			wantErr:     errCancelRefused,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{now: t0}
			tt.policy.Clock = clk
			var seen []State
			tt.policy.Progress = func(j *Job) { seen = append(seen, j.State) }
			src := tt.src
			got, err := Wait(context.Background(), &src, fakeID, tt.policy)
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			got.Job = nil
			if diff := cmp.Diff(tt.want, *got, cmp.Comparer(func(a, b error) bool { return a == b })); diff != "" {
				t.Errorf("Outcome (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantActions, src.actions); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantSleeps, clk.sleeps); diff != "" {
				t.Errorf("sleeps (-want +got):\n%s", diff)
			}
			if src.getErrors != tt.wantGetErrs {
				t.Errorf("GetError calls = %d, want %d", src.getErrors, tt.wantGetErrs)
			}
			// Progress sees every successful poll, in order.
			var want []State
			for i := 0; i < src.gets; i++ {
				s := src.steps[min(i, len(src.steps)-1)]
				if s.err == nil {
					want = append(want, s.state)
				}
			}
			if diff := cmp.Diff(want, seen); diff != "" {
				t.Errorf("progress (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWaitContextCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	src := &fakeSource{steps: st(StateTransferring)}
	p := Policy{Clock: &fakeClock{now: t0}, Progress: func(*Job) { cancel() }}
	got, err := Wait(ctx, src, fakeID, p)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if got.Polls != 1 || got.Final != StateTransferring || len(src.actions) != 0 {
		t.Fatalf("outcome = %+v, actions %v", got, src.actions)
	}
}

func TestWaitRealClockIsBounded(t *testing.T) {
	// The real clock path: a short interval and timeout, job never done.
	// The timeout leaves the first poll ample time on a loaded machine (a
	// first poll that outlasted it would end the wait after one poll).
	t.Parallel()
	src := &fakeSource{steps: st(StateQueued)}
	got, err := Wait(context.Background(), src, fakeID, Policy{Interval: 10 * time.Millisecond, Timeout: time.Second})
	if err != nil || got.Action != ResultTimedOut || got.Polls < 2 {
		t.Fatalf("= %+v, %v", got, err)
	}
}

func TestWaitEmptyID(t *testing.T) {
	if _, err := Wait(context.Background(), &fakeSource{}, "", Policy{}); err == nil {
		t.Fatal("empty id accepted")
	}
}

func TestRetryable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"refused", errRefused, true},
		{"reset", fmt.Errorf("post: %w", syscall.ECONNRESET), true},
		{"EOF", fmt.Errorf("read: %w", io.EOF), true},
		// net/http's unexported errServerClosedIdle, known by its text.
		{"server closed idle connection", fmt.Errorf("get on h: post to h: %w", errors.New("http: server closed idle connection")), true},
		{"503", err503, true},
		{"502 wrapped", fmt.Errorf("x: %w", &wsman.HTTPError{StatusCode: 502}), true},
		{"w:TimedOut", errTimedOut, true},
		{"deadline", context.DeadlineExceeded, true},
		{"net timeout", &net.DNSError{IsTimeout: true}, true},
		{"401", err401, false},
		{"500 html", &wsman.HTTPError{StatusCode: 500}, false},
		{"fault", &wsman.Fault{Subcode: "InvalidSelectors"}, false},
		{"return error", &ReturnError{Code: 0x80200002}, false},
		{"canceled", context.Canceled, false},
		{"nil", nil, false},
		{"plain", errors.New("x"), false},
		{"ambiguous Complete", &wsman.AmbiguousError{Err: errors.New("post: EOF-ish")}, true},
		{"garbled reply", &wsman.HTTPError{StatusCode: 200, Kind: fmt.Errorf("%w: junk", wsman.ErrProtocol)}, true},
		{"w:InternalError", &wsman.Fault{Subcode: "InternalError"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Retryable(tt.err); got != tt.want {
				t.Fatalf("Retryable(%v) = %v", tt.err, got)
			}
		})
	}
}

func TestResultString(t *testing.T) {
	for r, want := range map[Result]string{ResultCompleted: "Completed", ResultCancelled: "Cancelled", ResultLeft: "Left", ResultTimedOut: "TimedOut", ResultGone: "Gone", ResultFailed: "Failed", 0: "Result(0)", 9: "Result(9)"} {
		if r.String() != want {
			t.Errorf("%d: %q", int(r), r.String())
		}
	}
}

// TestWaitOnRetry: every host error the poller rides out is reported, a
// failed poll and a Complete it sends again alike.
func TestWaitOnRetry(t *testing.T) {
	src := &fakeSource{steps: []step{{err: errRefused}, {err: err503}, {state: StateTransferred}}, actionErrs: []error{errRefused}}
	var got []error
	p := Policy{Clock: &fakeClock{now: t0}, OnRetry: func(err error) { got = append(got, err) }}
	if _, err := Wait(context.Background(), src, fakeID, p); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]error{errRefused, err503, errRefused}, got, cmp.Comparer(func(a, b error) bool { return a == b })); diff != "" {
		t.Errorf("OnRetry calls (-want +got):\n%s", diff)
	}
}

// TestWaitErrorsAsTheSourceSaysThem: a host error that ends the wait
// already names the host, the operation and the job; the poller passes it
// on as it is instead of naming the job a second time.
func TestWaitErrorsAsTheSourceSaysThem(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  *fakeSource
		want error
	}{
		{"poll", &fakeSource{steps: []step{{err: errNotFound}}}, errNotFound},
		{"cancel", &fakeSource{steps: st(StateError), actionErrs: []error{err401}}, err401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Wait(context.Background(), tc.src, fakeID, Policy{Clock: &fakeClock{now: t0}, SkipErrorDetails: true})
			if err != tc.want {
				t.Errorf("err = %v, want %v itself", err, tc.want)
			}
		})
	}
}

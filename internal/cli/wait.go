package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/internal/fleet"
)

// WaitOptions are the options of "wait".
type WaitOptions struct {
	f *Factory
	// JobID is the first of JobIDs.
	JobID  string
	JobIDs []string
	// RunID is --run: wait for the jobs a ledger run recorded.
	RunID string
	// Ledger and NoLedger are --ledger and --no-ledger (with --run).
	Ledger    string
	NoLedger  bool
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

// NewCmdWait builds "wait JOBID..." and "wait --run RUN_ID".
func NewCmdWait(f *Factory) *cobra.Command {
	opts := &WaitOptions{f: f, Unreachable: defaultUnreachable}
	var wf waitFlags
	cmd := &cobra.Command{
		Use:   "wait {JOBID... | --run RUN_ID}",
		Short: "Wait for jobs to finish, showing progress (like gh run watch --exit-status)",
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

Several JOBIDs are each waited for on every host, reading each host's queue
once per poll for all of them; the output then has one record per job (a
table, or with -o json an array).

--run RUN_ID waits for the jobs a transfer or import-csv run recorded in the
ledger (see "bitsremote ledger list"; --ledger FILE as for those commands),
for example after "transfer --async", or a run someone else started. Each
host is reached the way the run reached it, without the run's inventory:
the ledger records its endpoint (address, port, scheme, path) and the
settings the host had of its own (ansible_user, ansible_winrm_transport,
ansible_winrm_message_encryption), never a password. The password, and -u,
--auth and --encryption for hosts that set none, come from this command
line; --port and --https apply only to hosts recorded by a bitsremote too
old to record endpoints. With -H or --inventory only the run's hosts among
those are waited for, and they are reached as given there, not as recorded
(for a host that has moved). Jobs already final in the ledger are reported
as recorded and not polled; the others are followed with one enumeration of
each host's queue per poll, and each step is recorded as it happens
(acknowledged, cancelled, gone, left), so a later "transfer --resume" or
"wait --run" does not touch the finished ones again.
A job the host no longer has was completed or cancelled by someone else
(exit 1). When every job of the run is final, the run is marked finished.

While the host does not answer, a note on stderr says so (at the first
failure, then every 30s). A host on which the job has not been seen once
since the wait began is given up after --unreachable-timeout (exit 4).

Here --timeout bounds the whole wait, not each request. Exit codes: 0 the job
was transferred (and completed with --complete); 1 it failed or was
cancelled, or left the queue without us; 4 the timeout passed (the job is
left as it is); 3 and 5 as for every command. With several jobs or hosts
the worst code wins.`,
		Example: `  bitsremote wait {6F6D6B3E-1B8A-4F3C-9C2E-3A3D1C2B4A5F} --complete -H server1 -u admin
  bitsremote wait {6F6D6B3E-1B8A-4F3C-9C2E-3A3D1C2B4A5F} --timeout 2h --transient cancel --on-error cancel -H server1 -u admin -o json
  bitsremote wait {6F6D6B3E-1B8A-4F3C-9C2E-3A3D1C2B4A5F} {0C1B3E55-7D2A-4E8F-9A61-2B7C8D9E0F12} --complete -H server1 -H server2 -u admin

  # the jobs of a transfer started with --async
  bitsremote transfer https://f.example.com/a.msi 'C:\Packages\' --async --inventory hosts.ini -u admin
  bitsremote ledger list
  bitsremote wait --run 20261121T101500Z-1a2b3c4d --complete -u admin -o jsonl`,
		Args: func(cmd *cobra.Command, args []string) error {
			run := cmd.Flags().Changed("run")
			switch {
			case run && len(args) > 0:
				return argError("%s: --run RUN_ID and JOBID arguments do not go together: wait for a run's jobs or for the jobs named", cmd.CommandPath())
			case !run && len(args) == 0:
				return argError("%s needs a JOBID (or several), or --run RUN_ID", cmd.CommandPath())
			case run && strings.TrimSpace(opts.RunID) == "":
				return usageErrorf("%s: --run is empty", cmd.CommandPath())
			}
			for _, a := range args {
				if strings.TrimSpace(a) == "" {
					return usageErrorf("%s: JOBID is empty", cmd.CommandPath())
				}
			}
			if !run && (cmd.Flags().Changed("ledger") || opts.NoLedger) {
				return usageErrorf("%s: --ledger and --no-ledger go with --run", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.JobIDs = args
			if len(args) > 0 {
				opts.JobID = args[0]
			}
			opts.Interval, opts.Timeout, opts.Transient, opts.OnError, opts.Unreachable = wf.Interval, wf.Timeout, wf.Transient, wf.OnError, wf.Unreachable
			switch {
			case opts.RunID != "":
				return waitLedgerRun(cmd.Context(), opts)
			case len(args) > 1:
				return waitManyRun(cmd.Context(), opts)
			}
			return waitRun(cmd.Context(), opts)
		},
	}
	wf.add(cmd, "leave")
	fl := cmd.Flags()
	fl.BoolVar(&opts.Complete, "complete", false, "complete the job once Transferred (make the files appear)")
	fl.StringVar(&opts.RunID, "run", "", "wait for the jobs of the transfer or import-csv run with this `ID` in the ledger (instead of JOBIDs)")
	fl.StringVar(&opts.Ledger, "ledger", "", "with --run, the ledger `FILE` (default $"+fleet.EnvLedger+", else $XDG_STATE_HOME/bitsremote/ledger.db, else ~/.local/state/bitsremote/ledger.db)")
	fl.BoolVar(&opts.NoLedger, "no-ledger", false, "refused with --run, which reads and records the run in the ledger")
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
	if oc.Action == 0 {
		// The wait ended without a verdict (interrupted, or a failure it
		// does not ride out): the command's error says why, and the
		// record is the job as last read, with no outcome.
		return rec
	}
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

// jobsProgress draws the progress of many jobs: on a terminal, one board
// line per host when there are several hosts, else a bar per job.
type jobsProgress struct {
	f     *Factory
	prog  *progress
	board *fleet.Board
}

func newJobsProgress(f *Factory, hosts []string, perHost int) *jobsProgress {
	if !f.IO.StderrTTY || len(hosts) < 2 {
		return &jobsProgress{prog: newProgress(f.IO)}
	}
	b := fleet.NewBoard(lockedWriter{f.IO, f.IO.ErrOut}, hosts, perHost)
	b.Width, b.Height = terminalSize()
	f.board = b
	return &jobsProgress{f: f, board: b}
}

func (p *jobsProgress) update(host string, index int, j *bitsprov.Job) {
	if p.board != nil {
		p.board.Update(host, index, j)
		return
	}
	p.prog.update(host+" "+j.JobID, j)
}

// jobDone marks a job finished on the board: done when err is nil (a
// transferred job left for the caller included), else failed.
func (p *jobsProgress) jobDone(host string, index int, j *bitsprov.Job, err error) {
	if p.board == nil {
		return
	}
	step := fleet.StepAcknowledged
	if err != nil {
		step = fleet.StepFailed
	}
	p.board.JobDone(fleet.JobResult{Host: host, Index: index, Job: j, Step: step, Err: err})
}

func (p *jobsProgress) hostDone(r fleet.Result) {
	if p.board != nil {
		p.board.HostDone(r)
	}
}

func (p *jobsProgress) close() {
	if p.board != nil {
		p.board.Close()
		p.f.board = nil
	}
}

// waitedJob turns a followed job's result into its record (the one a
// single wait prints) and its error. The record's Job is nil when the job
// was never read.
func waitedJob(ctx context.Context, host string, r fleet.JobResult, elapsed time.Duration) (jobRecord, error) {
	oc := r.Outcome
	rec := outcomeJobRecord(host, oc, elapsed)
	rec.Row = r.Row
	if oc != nil && oc.Action != 0 && oc.Action != bitsprov.ResultFailed {
		err := outcomeError(host, r.JobID, oc)
		if err == nil && r.Err != nil {
			// The job ended well but its ledger record failed.
			err = r.Err
		}
		return rec, err
	}
	err := r.Err
	if err == nil {
		return rec, nil
	}
	if ctx.Err() != nil {
		state := "unknown state"
		if rec.Job != nil {
			state = rec.Job.State.String()
		}
		err = fmt.Errorf("interrupted; job %s is left on the host (%s): %w", r.JobID, state, err)
	} else if !strings.Contains(err.Error(), r.JobID) {
		err = fmt.Errorf("job %s: %w", r.JobID, err)
	}
	if !strings.HasPrefix(err.Error(), host) {
		err = fmt.Errorf("%s: %w", host, err)
	}
	return rec, err
}

// waitManyRun is "wait JOBID JOBID...": every job on every host, each
// host's jobs followed together with one enumeration per poll cycle.
func waitManyRun(ctx context.Context, opts *WaitOptions) error {
	f := opts.f
	var ids []string
	seen := map[string]bool{}
	for _, a := range opts.JobIDs {
		if err := checkJobID(a); err != nil {
			return err
		}
		id := normalizeJobID(a)
		if k := strings.ToUpper(id); !seen[k] {
			seen[k] = true
			ids = append(ids, id)
		}
	}
	pol, err := opts.policy()
	if err != nil {
		return err
	}
	eps, cfg, err := f.prepare()
	if err != nil {
		return err
	}
	names := make([]string, len(eps))
	for i, ep := range eps {
		names[i] = ep.Name
	}
	out := newOutput(f.IO, f.Conn.Output, true)
	prog := newJobsProgress(f, names, len(ids))
	notes := newUnreachableNotes(f)
	err = f.fanOut(ctx, out, eps, cfg, func(ctx context.Context, s *session) error {
		host := s.Endpoint.Name
		c := &fleet.Conn{Host: s.Endpoint.host, Name: host, URL: s.Endpoint.URL, WSMan: s.WSMan, Bits: s.Bits}
		entries := make([]*fleet.Entry, len(ids))
		for i, id := range ids {
			entries[i] = &fleet.Entry{Host: host, Index: i, JobID: id, Step: fleet.StepResumed}
		}
		tr, ended := f.followJobs(ctx, pol, notes, prog, host, host)
		res := tr.WaitEntries(ctx, c, entries)
		return emitJobs(f, out, host, res, func(r fleet.JobResult) (jobRecord, error) {
			return waitedJob(ctx, host, r, ended(r.Index))
		})
	})
	prog.close()
	return flushWith(out, renderWaitJobs, err)
}

// followJobs is the Transfer that waits for one host's jobs in wait (by
// id, or a ledger run's): progress lines and unreachable notes as jobs
// are read, each job's line closed as its result comes (its record named
// name, its line on the board boardName). ended tells how long after now
// the job of an index ended, for its record.
func (f *Factory) followJobs(ctx context.Context, pol bitsprov.Policy, notes *unreachableNotes, prog *jobsProgress, name, boardName string) (tr *fleet.Transfer, ended func(index int) time.Duration) {
	start := f.Clock.Now()
	var mu sync.Mutex
	at := map[int]time.Duration{}
	tr = &fleet.Transfer{Policy: pol,
		OnProgress: func(host string, index int, j *bitsprov.Job) {
			notes.answered(host)
			prog.update(host, index, j)
		},
		OnRetry: func(host string, _ int, id string, err error) { notes.failed(host, id, err) },
		OnJob: func(r fleet.JobResult) {
			mu.Lock()
			at[r.Index] = f.Clock.Now().Sub(start)
			mu.Unlock()
			_, err := waitedJob(ctx, name, r, 0)
			prog.jobDone(boardName, r.Index, r.Job, err)
		},
	}
	return tr, func(index int) time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return at[index]
	}
}

// emitJobs prints a host's job records in order and reports each failed
// job on stderr; the host's error carries the worst code.
func emitJobs(f *Factory, out *output, host string, res []fleet.JobResult, record func(fleet.JobResult) (jobRecord, error)) error {
	var codes []int
	for _, r := range res {
		rec, err := record(r)
		if rec.Job != nil {
			if eerr := out.emit(host, rec); eerr != nil && err == nil {
				err = eerr
			}
		}
		if err == nil {
			continue
		}
		f.warnf("bitsremote: %v", err)
		if rec.Job == nil && out.format != "table" {
			_ = out.emit(host, failureRecord{Host: host, Row: r.Row, ExitCode: ExitCode(err), Failure: err.Error()})
		}
		codes = append(codes, ExitCode(err))
	}
	if len(codes) == 0 {
		return nil
	}
	return &exitError{code: worst(codes...), err: fmt.Errorf("%s: %d of %d jobs failed", host, len(codes), len(res))}
}

// policy validates the polling flags into a poller policy.
func (o *WaitOptions) policy() (bitsprov.Policy, error) {
	wf := waitFlags{Interval: o.Interval, Timeout: o.Timeout, Transient: o.Transient, OnError: o.OnError, Unreachable: o.Unreachable}
	pol, err := wf.policy(o.f)
	if err != nil {
		return pol, err
	}
	if !o.Complete {
		pol.OnTransferred = bitsprov.TransferredLeave
	}
	return pol, nil
}

// renderWaitJobs prints one row per job, grouped by host (the records
// come sorted by host, each host's jobs in order).
func renderWaitJobs(w io.Writer, recs []record) {
	tw := newTable(w)
	rows := false
	for _, r := range recs {
		if jr, ok := r.value.(jobRecord); ok && jr.Row > 0 {
			rows = true
		}
	}
	fmt.Fprint(tw, "HOST\t")
	if rows {
		fmt.Fprint(tw, "ROW\t")
	}
	fmt.Fprintln(tw, "JOBID\tSTATE\tRESULT\tFILES\tBYTES\tDETAIL")
	for _, r := range recs {
		jr, ok := r.value.(jobRecord)
		if !ok || jr.Job == nil {
			continue
		}
		j := jr.Job
		fmt.Fprintf(tw, "%s\t", jr.Host)
		if rows {
			fmt.Fprintf(tw, "%s\t", map[bool]string{true: fmt.Sprint(jr.Row), false: "-"}[jr.Row > 0])
		}
		result, detail := "-", "-"
		if o := jr.Outcome; o != nil {
			result = o.Result
			if o.Detail != "" {
				detail = o.Detail
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\n", j.JobID, j.State, result, j.FilesTransferred, j.FilesTotal,
			progressText(j.BytesTransferred, j.BytesTotal), detail)
	}
	tw.Flush()
}

// runHost is one host of a ledger run, as wait --run follows it.
type runHost struct {
	// name is the host as the ledger records it (the output's host).
	name string
	// ep is how this command line reaches it.
	ep Endpoint
	// entries are the host's jobs in the run, by index; open are those
	// with a JobId that are not final, the ones to wait for.
	entries []*fleet.Entry
	open    []*fleet.Entry
}

// jobItem is one job's record and error, ready to print.
type jobItem struct {
	rec jobRecord
	err error
	// polled is false for a job reported as the ledger has it.
	polled bool
}

// runTally counts a wait --run's jobs for its summary.
type runTally struct {
	mu                         sync.Mutex
	jobs, ok, failed, recorded int
	code                       int
}

func (t *runTally) add(items []jobItem) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, it := range items {
		t.jobs++
		if !it.polled {
			t.recorded++
		}
		if it.err == nil {
			t.ok++
			continue
		}
		t.failed++
		t.code = max(t.code, ExitCode(it.err))
	}
}

// waitLedgerRun is "wait --run RUN_ID": the run's unfinished jobs, by
// host, each host's followed with one enumeration per poll cycle and
// every step recorded in the ledger.
func waitLedgerRun(ctx context.Context, opts *WaitOptions) error {
	f := opts.f
	pol, err := opts.policy()
	if err != nil {
		return err
	}
	if opts.NoLedger {
		return usageErrorf("--run reads the run from the ledger and records its jobs there; drop --no-ledger")
	}
	id := strings.TrimSpace(opts.RunID)
	led, run, err := openRun(f, opts.Ledger, id)
	if err != nil {
		return err
	}
	defer led.Close()
	entries, err := led.Entries(run.ID)
	if err != nil {
		return err
	}
	hosts, err := f.runHosts(run.ID, entries)
	if err != nil {
		return err
	}
	if len(hosts) == 0 {
		f.IO.Warnf("run %s recorded no job; nothing to wait for", run.ID)
		return nil
	}
	cfg, err := f.baseConfig()
	if err != nil {
		return err
	}
	var poll []Endpoint
	byPool := map[string]*runHost{}
	names := make([]string, len(hosts))
	perHost := len(hosts[0].entries)
	for i, rh := range hosts {
		names[i] = rh.ep.Name
		if len(rh.entries) != perHost {
			perHost = 0 // the board counts each host's jobs as it sees them
		}
		if len(rh.open) > 0 {
			poll = append(poll, rh.ep)
			byPool[rh.ep.Name] = rh
		}
	}
	if len(poll) > 0 {
		if err := checkHTTPSOnly(cfg, poll); err != nil {
			return err
		}
		// The password is asked for only when a host is to be polled.
		if err := f.passwords(&cfg, poll); err != nil {
			return err
		}
		if f.Conn.InsecureSkipVerify {
			f.IO.Warnf("warning: --insecure-skip-verify: the hosts' TLS certificates are not checked; anyone on the path can read and change the traffic")
		}
	}

	out := newOutput(f.IO, f.Conn.Output, true)
	out.multiHost = len(hosts) > 1
	prog := newJobsProgress(f, names, perHost)
	var tally runTally
	// Hosts whose jobs are all final (or never created) are reported
	// from the ledger without a connection.
	for _, rh := range hosts {
		for _, e := range rh.entries {
			if !isOpen(e) {
				_, err := recordedJob(rh.name, e)
				prog.jobDone(rh.ep.Name, e.Index, nil, err)
			}
		}
		if len(rh.open) == 0 {
			items := runItems(rh, nil, nil)
			tally.add(items)
			_ = emitItems(f, out, rh.name, items)
		}
	}

	var sum fleet.Summary
	if len(poll) > 0 {
		pool := f.pool(poll, cfg)
		defer pool.Close()
		notes := newUnreachableNotes(f)
		var mu sync.Mutex
		var firstErr error
		fo := f.fleetOptions(out, len(poll), &firstErr, &mu) // concurrency, time limit, exit codes
		fo.OnResult = func(r fleet.Result) {
			prog.hostDone(r)
			f.log().Debug("host done", "host", r.Host, "elapsed", r.Elapsed, "exitCode", r.Code)
			var ee *exitError
			if r.Err == nil || errors.As(r.Err, &ee) {
				// Each failed job was reported, with its record.
				return
			}
			// The host could not be worked on at all.
			f.warnf("bitsremote: %v", r.Err)
			out.failure(r.Host, r.Code, r.Err)
		}
		_, sum = pool.Run(ctx, fo, func(ctx context.Context, c *fleet.Conn) error {
			rh := byPool[c.Name]
			tr, ended := f.followJobs(ctx, pol, notes, prog, rh.name, c.Name)
			tr.Ledger, tr.Run = led, run
			res := tr.WaitEntries(ctx, c, rh.open)
			items := runItems(rh, res, func(r fleet.JobResult) (jobRecord, error) { return waitedJob(ctx, rh.name, r, ended(r.Index)) })
			tally.add(items)
			return explain(c.WSMan, emitItems(f, out, rh.name, items))
		})
	}
	prog.close()

	// Every job of the run final: the run is finished, as a transfer
	// that waited for its jobs would have left it.
	finished := false
	if run.Finished.IsZero() {
		if all, err := led.Entries(run.ID); err == nil && len(all) > 0 && allFinal(all) {
			if err := led.FinishRun(run.ID); err != nil {
				f.IO.Warnf("warning: %v", err)
			} else {
				finished = true
			}
		}
	}
	ferr := out.flush(renderWaitJobs)
	msg := fmt.Sprintf("summary: run %s: %d jobs on %d hosts: %d ok, %d failed", run.ID, tally.jobs, len(hosts), tally.ok, tally.failed)
	if tally.recorded > 0 {
		msg += fmt.Sprintf("; %d as recorded in the ledger, not polled", tally.recorded)
	}
	if finished {
		msg += "; the run is finished"
	}
	f.IO.Warnf("%s", msg)
	code := max(tally.code, sum.Code)
	if code == ExitOK && sum.Failed > 0 {
		code = ExitJobFailed
	}
	if code != ExitOK {
		if ctx.Err() != nil {
			f.IO.Warnf("bitsremote: interrupted; the jobs not final are left on the hosts: follow them again with 'bitsremote wait --run %s'", run.ID)
		}
		failed := tally.failed
		if failed == 0 {
			return &exitError{code: code, err: fmt.Errorf("run %s: %s", run.ID, sum.Err())}
		}
		return &exitError{code: code, err: fmt.Errorf("run %s: %d of %d jobs failed", run.ID, failed, tally.jobs)}
	}
	return ferr
}

// isOpen reports a job wait --run follows: created and not final.
func isOpen(e *fleet.Entry) bool { return e.JobID != "" && !e.Step.Final() }

func allFinal(entries []fleet.Entry) bool {
	for _, e := range entries {
		if !e.Step.Final() {
			return false
		}
	}
	return true
}

// runItems are a host's jobs in the run's order: those waited for (res,
// in rh.open's order) through waited, the others as the ledger has them.
func runItems(rh *runHost, res []fleet.JobResult, waited func(fleet.JobResult) (jobRecord, error)) []jobItem {
	byIndex := map[int]fleet.JobResult{}
	for _, r := range res {
		byIndex[r.Index] = r
	}
	var items []jobItem
	for _, e := range rh.entries {
		r, ok := byIndex[e.Index]
		if !ok {
			rec, err := recordedJob(rh.name, e)
			items = append(items, jobItem{rec: rec, err: err})
			continue
		}
		rec, err := waited(r)
		if rec.Job == nil {
			// Never read in this wait: the job as the ledger has it.
			rec.Job = ledgerJob(e)
		}
		items = append(items, jobItem{rec: rec, err: err, polled: true})
	}
	return items
}

// emitItems prints a host's job records and reports each failed job on
// stderr; the host's error carries the worst code.
func emitItems(f *Factory, out *output, host string, items []jobItem) error {
	var codes []int
	for _, it := range items {
		err := it.err
		if it.rec.Job != nil {
			if eerr := out.emit(host, it.rec); eerr != nil && err == nil {
				err = eerr
			}
		}
		if err == nil {
			continue
		}
		f.warnf("bitsremote: %v", err)
		if it.rec.Job == nil && out.format != "table" {
			_ = out.emit(host, failureRecord{Host: host, Row: it.rec.Row, ExitCode: ExitCode(err), Failure: err.Error()})
		}
		codes = append(codes, ExitCode(err))
	}
	if len(codes) == 0 {
		return nil
	}
	return &exitError{code: worst(codes...), err: fmt.Errorf("%s: %d of %d jobs failed", host, len(codes), len(items))}
}

// ledgerJob is what the ledger knows of a job: its id, name, files,
// priority and last state seen (the final one, after our Complete or
// Cancel).
func ledgerJob(e *fleet.Entry) *bitsprov.Job {
	j := e.RecordedJob()
	switch e.Step {
	case fleet.StepAcknowledged:
		j.State = bitsprov.StateAcknowledged
	case fleet.StepCancelled:
		j.State = bitsprov.StateCancelled
	}
	return j
}

// recordedJob reports a job wait --run does not poll: final in the
// ledger, or never created. Only an acknowledged job is a success.
func recordedJob(host string, e *fleet.Entry) (jobRecord, error) {
	rec := jobRecord{Host: host, Row: e.Row}
	if e.JobID == "" {
		what := "its create failed"
		if !e.Step.Final() {
			what = "its create was interrupted; run the transfer again with --resume to find or create it"
		}
		if e.Error != "" {
			what += ": " + e.Error
		}
		return rec, &exitError{code: ExitJobFailed, err: fmt.Errorf("%s: job #%d of the run was never created (%s in the ledger): %s", host, e.Index+1, e.Step, what)}
	}
	rec.Job = ledgerJob(e)
	detail := string(e.Step) + " in the ledger; not polled"
	rec.Outcome = &outcomeRecord{Result: "AlreadyDone", Detail: detail}
	if e.Step == fleet.StepAcknowledged {
		return rec, nil
	}
	reason := string(e.Step) + " (as recorded in the ledger)"
	if e.Error != "" {
		reason += ": " + e.Error
		rec.Outcome.Detail += ": " + e.Error
	}
	return rec, &JobFailedError{Host: host, JobID: e.JobID, Reason: reason}
}

// openRun opens the ledger and finds the run; a missing ledger or run is
// a usage error naming both.
func openRun(f *Factory, flag, id string) (*fleet.Ledger, *fleet.Run, error) {
	path, err := ledgerPath(f, flag)
	if err != nil {
		return nil, nil, err
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil, usageErrorf("no run %s: there is no ledger at %s yet (see 'bitsremote ledger list', or give --ledger FILE)", id, path)
	}
	led, err := fleet.OpenLedger(path)
	if errors.Is(err, fleet.ErrLedgerBusy) {
		return nil, nil, usageErrorf("%w: try again when it is done", err)
	}
	if err != nil {
		return nil, nil, usageErrorf("%w", err)
	}
	run, err := led.Run(id)
	if err != nil {
		return nil, nil, err
	}
	if run == nil {
		return nil, nil, usageErrorf("no run %s in the ledger %s (see 'bitsremote ledger list')", id, path)
	}
	return led, run, nil
}

// ledgerHost is how the ledger says to reach the host: the endpoint and
// own settings recorded with its most recently updated job, or, for
// entries recorded before bitsremote kept them, its name (with this
// command line's --port and --https, as before).
func (rh *runHost) ledgerHost() (fleet.Host, error) {
	var latest *fleet.Entry
	for _, e := range rh.entries {
		if e.Endpoint != nil && (latest == nil || e.Updated.After(latest.Updated)) {
			latest = e
		}
	}
	if latest != nil {
		return latest.Endpoint.Host(rh.name)
	}
	h, err := fleet.ParseHost(rh.name)
	if err != nil {
		return h, fmt.Errorf("host %q in the ledger: %w", rh.name, err)
	}
	return h, nil
}

// runHosts groups a run's jobs by host and says how to reach each: as
// the ledger recorded it (ledgerHost) with this command line's
// connection flags for what the host did not set, or, when -H or
// --inventory are given, by the matching entry there: hosts given
// explicitly win over the ledger, so that a host that moved can be
// reached (only the run's hosts among them are kept).
func (f *Factory) runHosts(runID string, entries []fleet.Entry) ([]*runHost, error) {
	c := &f.Conn
	if c.Port < 0 || c.Port > 65535 {
		return nil, usageErrorf("--port %d is not a port number", c.Port)
	}
	var hosts []*runHost
	byName := map[string]*runHost{}
	for i := range entries {
		e := &entries[i]
		rh := byName[e.Host]
		if rh == nil {
			rh = &runHost{name: e.Host}
			byName[e.Host] = rh
			hosts = append(hosts, rh)
		}
		rh.entries = append(rh.entries, e)
		if isOpen(e) {
			rh.open = append(rh.open, e)
		}
	}
	if len(c.Hosts) == 0 && c.Inventory == "" {
		if c.Limit != "" {
			return nil, usageErrorf("--limit selects hosts of an --inventory; with -H name the hosts themselves")
		}
		for _, rh := range hosts {
			h, err := rh.ledgerHost()
			if err != nil {
				return nil, usageErrorf("run %s: %w", runID, err)
			}
			name, url := h.Endpoint(c.Port, c.HTTPS)
			rh.ep = Endpoint{Name: name, URL: url, host: h}
		}
		return hosts, nil
	}
	eps, err := f.endpoints()
	if err != nil {
		return nil, err
	}
	given := map[string]Endpoint{}
	var extra []string
	for _, ep := range eps {
		given[ep.Name] = ep
		if byName[ep.Name] == nil {
			extra = append(extra, ep.Name)
		}
	}
	var kept []*runHost
	var left []string
	for _, rh := range hosts {
		if ep, ok := given[rh.name]; ok {
			rh.ep = ep
			kept = append(kept, rh)
		} else {
			left = append(left, rh.name)
		}
	}
	if len(kept) == 0 {
		var all []string
		for _, rh := range hosts {
			all = append(all, rh.name)
		}
		return nil, usageErrorf("none of the hosts given is in run %s (its hosts: %s)", runID, strings.Join(all, ", "))
	}
	if len(left) > 0 {
		f.IO.Warnf("wait --run: %d of the %d hosts of run %s are not among the hosts given and are left out: %s", len(left), len(hosts), runID, strings.Join(left, ", "))
	}
	if len(extra) > 0 {
		f.IO.Warnf("wait --run: no job of run %s on %s; not waited for", runID, strings.Join(extra, ", "))
	}
	return kept, nil
}

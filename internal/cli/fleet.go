package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/internal/fleet"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
)

// fleetHosts resolves -H and --inventory (narrowed by --limit) into
// hosts, in order: -H first, then the inventory's.
func (f *Factory) fleetHosts() ([]fleet.Host, error) {
	c := &f.Conn
	var hosts []fleet.Host
	for _, s := range c.Hosts {
		h, err := fleet.ParseHost(s)
		if err != nil {
			return nil, &UsageError{Err: err}
		}
		hosts = append(hosts, h)
	}
	if c.Inventory != "" {
		inv, err := fleet.LoadInventory(c.Inventory)
		if err != nil {
			return nil, &UsageError{Err: err}
		}
		for _, w := range inv.Warnings {
			f.IO.Warnf("warning: %s", w)
		}
		ih, err := inv.Hosts(c.Limit)
		if err != nil {
			return nil, &UsageError{Err: fmt.Errorf("%s: %w", c.Inventory, err)}
		}
		hosts = append(hosts, ih...)
	} else if c.Limit != "" {
		return nil, usageErrorf("--limit selects hosts of an --inventory; with -H name the hosts themselves")
	}
	if len(hosts) == 0 {
		return nil, usageErrorf("no host: give -H HOST (repeatable) or --inventory FILE")
	}
	return hosts, nil
}

// connector is how fan-outs connect: the shared transport settings, the
// per-host overrides an inventory carries, and the --debug wire log.
func (f *Factory) connector(cfg transport.Config) *fleet.Connector {
	cn := &fleet.Connector{
		Base:             cfg,
		DefaultPort:      f.Conn.Port,
		HTTPS:            f.Conn.HTTPS,
		OperationTimeout: operationTimeout(f.Conn.Timeout),
		NewTransport: func(c transport.Config) (transport.Transport, error) {
			t, err := f.NewTransport(c)
			if err != nil {
				return nil, &UsageError{Err: err}
			}
			return t, nil
		},
		Configure: func(wc *wsman.Client) { wc.Retry = wsman.RetryPolicy{Attempts: f.Conn.Retries + 1} },
	}
	if f.pwMap != nil {
		cn.Password = f.hostPassword
	}
	if f.Conn.Debug {
		cn.Wrap = func(host string, t transport.Transport) transport.Transport {
			return &debugTransport{next: t, log: f.log(), host: host}
		}
	}
	return cn
}

// pool returns the connections of the endpoints.
func (f *Factory) pool(eps []Endpoint, cfg transport.Config) *fleet.Pool {
	hosts := make([]fleet.Host, len(eps))
	for i, ep := range eps {
		hosts[i] = ep.fleetHost()
	}
	if f.Procs != nil {
		procs := f.Procs(len(hosts), f.Conn.Concurrency)
		f.log().Debug("procs", "hosts", len(hosts), "concurrency", f.Conn.Concurrency, "GOMAXPROCS", procs)
	}
	return fleet.NewPool(hosts, f.connector(cfg))
}

// sessionOf is the command's view of a fleet connection.
func sessionOf(c *fleet.Conn) *session {
	return &session{Endpoint: Endpoint{Name: c.Name, URL: c.URL, host: c.Host}, WSMan: c.WSMan, Bits: c.Bits}
}

// warnf prints a message on stderr, above the progress board when one is
// drawn.
func (f *Factory) warnf(format string, a ...any) {
	if f.board != nil {
		f.board.Log(fmt.Sprintf(format, a...))
		return
	}
	f.IO.Warnf(format, a...)
}

// fleetOptions are the fan-out options of every command: --concurrency,
// exit codes by ExitCode, and each failed host reported as it ends when
// there are several.
func (f *Factory) fleetOptions(out *output, n int, firstErr *error, mu *sync.Mutex) fleet.Options {
	return fleet.Options{
		Concurrency: f.Conn.Concurrency,
		HostTimeout: f.Conn.HostTimeout,
		Classify:    ExitCode,
		OnResult: func(r fleet.Result) {
			f.log().Debug("host done", "host", r.Host, "elapsed", r.Elapsed, "exitCode", r.Code)
			if r.Err == nil {
				return
			}
			mu.Lock()
			if *firstErr == nil {
				*firstErr = r.Err
			}
			mu.Unlock()
			if n == 1 {
				return
			}
			var ee *exitError
			if !errors.As(r.Err, &ee) {
				// exitErrors were reported piece by piece already.
				f.warnf("bitsremote: %v", r.Err)
			}
			out.failure(r.Host, r.Code, r.Err)
		},
	}
}

// fleetResult turns a fan-out's summary into the command's error: one
// host's own error, or for several a summary line on stderr and the worst
// code with the counts (each host's failure was printed as it happened).
func (f *Factory) fleetResult(n int, firstErr error, sum fleet.Summary) error {
	if n == 1 {
		return firstErr
	}
	f.warnf("summary: %s", sum)
	if sum.Failed > 0 {
		return &exitError{code: sum.Code, err: sum.Err()}
	}
	return nil
}

// ledgerFlags are the ledger options of transfer and import-csv.
type ledgerFlags struct {
	Path     string
	Resume   bool
	NoLedger bool
}

func (l *ledgerFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&l.Path, "ledger", "", "record jobs in this `FILE` (default $"+fleet.EnvLedger+", else $XDG_STATE_HOME/bitsremote/ledger.db, else ~/.local/state/bitsremote/ledger.db)")
	fl.BoolVar(&l.Resume, "resume", false, "continue the interrupted run of the same command: jobs already created are found again, not created twice; finished ones are left alone")
	fl.BoolVar(&l.NoLedger, "no-ledger", false, "do not record the jobs (an interrupted run then cannot be resumed)")
}

// ledgerPath is --ledger, else the default under the state directory.
func ledgerPath(f *Factory, flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	p, err := fleet.DefaultLedgerPath(f.Getenv)
	if err != nil {
		return "", usageErrorf("%w", err)
	}
	return p, nil
}

// beginRun opens the ledger and starts (or with --resume finds) the run.
func (l *ledgerFlags) beginRun(f *Factory, command, args string, specs []fleet.JobSpec) (*fleet.Ledger, *fleet.Run, error) {
	if l.NoLedger {
		if l.Resume {
			return nil, nil, usageErrorf("--resume needs the ledger; drop --no-ledger")
		}
		return nil, nil, nil
	}
	path, err := ledgerPath(f, l.Path)
	if err != nil {
		if l.Resume {
			return nil, nil, err
		}
		// No state directory (a bare cron or service environment): run
		// as before the ledger existed rather than refuse to work.
		f.IO.Warnf("warning: %v; the jobs are not recorded and an interrupted run cannot be resumed", err)
		return nil, nil, nil
	}
	led, err := fleet.OpenLedger(path)
	if errors.Is(err, fleet.ErrLedgerBusy) {
		return nil, nil, usageErrorf("%w: to run alongside it, give this run its own --ledger FILE (or --no-ledger)", err)
	}
	if err != nil {
		return nil, nil, usageErrorf("%w", err)
	}
	fp := fleet.Fingerprint(command, specs)
	if !l.Resume {
		if u, err := led.UnfinishedRun(command, fp); err == nil && u != nil {
			f.IO.Warnf("warning: an interrupted %s of the same jobs (run %s, started %s) is in the ledger; this starts new jobs. Use --resume to continue it instead.",
				command, u.ID, u.Created.Local().Format(time.RFC3339))
		}
	}
	run, err := led.BeginRun(command, fp, args, l.Resume)
	if err != nil {
		led.Close()
		if errors.Is(err, fleet.ErrNoRun) {
			return nil, nil, usageErrorf("--resume: no interrupted %s with these jobs in the ledger %s (see 'bitsremote ledger list')", command, path)
		}
		return nil, nil, err
	}
	return led, run, nil
}

// fleetTransfer runs transfer and import-csv: the jobs of specs on every
// host, recorded in the ledger, with one progress line per host on a
// terminal when there are several hosts.
func fleetTransfer(ctx context.Context, f *Factory, command string, lf *ledgerFlags, st *transferSettings, specs []transferSpec, out *output) error {
	eps, cfg, err := f.prepare()
	if err != nil {
		return err
	}
	fspecs := make([]fleet.JobSpec, len(specs))
	for i, s := range specs {
		fspecs[i] = fleet.JobSpec{Row: s.Row, Opts: s.Opts}
	}
	led, run, err := lf.beginRun(f, command, "", fspecs)
	if err != nil {
		return err
	}
	if led != nil {
		defer led.Close()
	}
	out.multiHost = len(eps) > 1
	pool := f.pool(eps, cfg)
	defer pool.Close()

	var onProgress func(string, int, *bitsprov.Job)
	var board *fleet.Board
	if f.IO.StderrTTY && len(eps) > 1 {
		board = fleet.NewBoard(lockedWriter{f.IO, f.IO.ErrOut}, pool.Names(), len(specs))
		board.Width, board.Height = terminalSize()
		onProgress = board.Update
		f.board = board
	} else {
		prog := newProgress(f.IO)
		onProgress = func(host string, _ int, j *bitsprov.Job) { prog.update(host+" "+j.JobID, j) }
	}

	// The same notes as wait's while a host does not answer.
	notes := newUnreachableNotes(f)
	progress := func(host string, index int, j *bitsprov.Job) {
		notes.answered(host)
		onProgress(host, index, j)
	}

	var mu sync.Mutex
	var firstErr error
	fo := f.fleetOptions(out, len(eps), &firstErr, &mu)
	if board != nil {
		inner := fo.OnResult
		fo.OnResult = func(r fleet.Result) { board.HostDone(r); inner(r) }
	}
	_, sum := pool.Run(ctx, fo, func(ctx context.Context, c *fleet.Conn) error {
		start := f.Clock.Now()
		tr := &fleet.Transfer{Specs: fspecs, Ledger: led, Run: run, Async: st.Async, Policy: st.Policy, OnProgress: progress,
			OnRetry: func(host string, _ int, id string, err error) { notes.failed(host, id, err) }}
		if board != nil {
			tr.OnJob = board.JobDone
		}
		res, _ := tr.Host(ctx, c)
		var codes []int
		var jobErr error
		for _, r := range res {
			rec, err := jobResultRecord(r, f.Clock.Now().Sub(start))
			err = explain(c.WSMan, err)
			if rec.Job != nil {
				if eerr := out.emit(c.Name, rec); eerr != nil && err == nil {
					err = eerr
				}
			}
			if err == nil {
				continue
			}
			if len(specs) > 1 {
				err = fmt.Errorf("%s: row %d: %w", c.Name, r.Row, err)
				f.warnf("bitsremote: %v", err)
				if rec.Job == nil && out.format != "table" {
					_ = out.emit(c.Name, failureRecord{Host: c.Name, Row: r.Row, ExitCode: ExitCode(err), Failure: err.Error()})
				}
			}
			codes = append(codes, ExitCode(err))
			if jobErr == nil {
				jobErr = err
			}
		}
		switch {
		case jobErr == nil:
			return nil
		case len(specs) == 1:
			return jobErr
		}
		return &exitError{code: worst(codes...), err: fmt.Errorf("%s: %d of %d rows failed", c.Name, len(codes), len(specs))}
	})
	if led != nil {
		tr := &fleet.Transfer{Specs: fspecs, Ledger: led, Run: run}
		if _, ferr := tr.Finish(pool.Names()); ferr != nil {
			f.IO.Warnf("warning: %v", ferr)
		}
	}
	err = f.fleetResult(len(eps), firstErr, sum)
	if board != nil {
		board.Close()
		f.board = nil
	}
	if err != nil && ctx.Err() != nil && led != nil {
		f.IO.Warnf("bitsremote: interrupted; run the same command with --resume to continue (jobs already created are not created again)")
	}
	if st.Async && led != nil && run != nil && ctx.Err() == nil && sum.OK > 0 {
		f.IO.Warnf("bitsremote: follow these jobs with: bitsremote wait --run %s --complete", run.ID)
	}
	return err
}

// jobResultRecord renders one job's result and says whether it failed.
func jobResultRecord(r fleet.JobResult, elapsed time.Duration) (jobRecord, error) {
	host := r.Host
	switch {
	case r.Done:
		// The job as the ledger last saw it (its state, when recorded),
		// not a zero state that would read as Queued.
		j := &bitsprov.Job{JobID: r.JobID}
		if r.Job != nil {
			c := *r.Job
			j = &c
		}
		rec := jobRecord{Host: host, Row: r.Row, Job: j, Outcome: &outcomeRecord{Result: "AlreadyDone",
			Detail: "finished in an earlier run (" + string(r.Step) + " in the ledger); not touched"}}
		switch r.Step {
		case fleet.StepAcknowledged:
			rec.Job.State = bitsprov.StateAcknowledged
			return rec, nil
		case fleet.StepCancelled:
			rec.Job.State = bitsprov.StateCancelled
		}
		if r.JobID == "" {
			rec.Job = nil
		}
		if r.Err == nil {
			// A job cancelled (or gone) in an earlier run whose entry
			// carries no error text.
			return rec, fmt.Errorf("%s in an earlier run", r.Step)
		}
		return rec, fmt.Errorf("%s in an earlier run: %w", r.Step, r.Err)
	case r.Outcome != nil && r.Outcome.Action != 0:
		rec := outcomeJobRecord(host, r.Outcome, elapsed)
		rec.Row = r.Row
		if rec.Job == nil {
			rec.Job = &bitsprov.Job{JobID: r.JobID, State: r.Outcome.Final}
		}
		return rec, outcomeError(host, r.JobID, r.Outcome)
	case r.Err == nil && r.JobID != "":
		// --async (or a job left suspended): created and not waited for.
		j := r.Job
		if j == nil {
			j = &bitsprov.Job{JobID: r.JobID}
		}
		return jobRecord{Host: host, Row: r.Row, Job: j, Outcome: &outcomeRecord{Result: "Async",
			Elapsed: elapsed.Round(time.Millisecond).Seconds(), Detail: "job created and resumed; not waited for"}}, nil
	}
	rec := jobRecord{Host: host, Row: r.Row}
	if r.JobID != "" {
		rec.Job = r.Job
		if rec.Job == nil {
			rec.Job = &bitsprov.Job{JobID: r.JobID}
		}
		if r.Outcome != nil {
			rec = outcomeJobRecord(host, r.Outcome, elapsed)
			rec.Row = r.Row
			if rec.Job == nil {
				rec.Job = &bitsprov.Job{JobID: r.JobID}
			}
		}
	}
	err := r.Err
	if err == nil {
		return rec, nil
	}
	if r.JobID != "" && !strings.Contains(err.Error(), r.JobID) {
		err = fmt.Errorf("job %s: %w", r.JobID, err)
	}
	return rec, err
}

// hostProgress draws a wait's progress on a terminal: a bar per job for
// one host, and for a fleet one line per host through a fleet.Board,
// which redraws at most five times a second and fits the terminal.
type hostProgress struct {
	f     *Factory
	prog  *progress
	board *fleet.Board
}

func newHostProgress(f *Factory, fleetMode bool) *hostProgress {
	if !fleetMode || !f.IO.StderrTTY {
		return &hostProgress{prog: newProgress(f.IO)}
	}
	b := fleet.NewBoard(lockedWriter{f.IO, f.IO.ErrOut}, nil, 1)
	b.Width, b.Height = terminalSize()
	f.board = b
	return &hostProgress{f: f, board: b}
}

func (p *hostProgress) update(host, id string, j *bitsprov.Job) {
	if p.board != nil {
		p.board.Update(host, 0, j)
		return
	}
	p.prog.update(host+" "+id, j)
}

// done marks the host's job finished: done when err is nil, else failed.
func (p *hostProgress) done(host string, err error) {
	if p.board == nil {
		return
	}
	step := fleet.StepAcknowledged
	if err != nil {
		step = fleet.StepFailed
	}
	p.board.JobDone(fleet.JobResult{Host: host, Step: step, Err: err})
}

func (p *hostProgress) close() {
	if p.board != nil {
		p.board.Close()
		p.f.board = nil
	}
}

// terminalSize is stderr's width and height, or zeros (the board's
// defaults) when it cannot be read.
func terminalSize() (width, height int) {
	w, h, err := term.GetSize(int(os.Stderr.Fd()))
	if err != nil {
		return 0, 0
	}
	return w, h
}

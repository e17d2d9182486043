package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bitsremote/bitsremote/internal/fleet"
)

// LedgerOptions are the options of "ledger list" and "ledger prune".
type LedgerOptions struct {
	f    *Factory
	Path string
	// list
	Jobs bool
	Run  string
	// prune
	OlderThan  time.Duration
	Unfinished bool
}

// NewCmdLedger builds "ledger" with its subcommands.
func NewCmdLedger(f *Factory) *cobra.Command {
	opts := &LedgerOptions{f: f}
	cmd := &cobra.Command{
		Use:   "ledger",
		Short: "Show or clean the record of jobs created by transfer and import-csv",
		Long: `transfer and import-csv record every job they create in a ledger, a small
database under the user's state directory ($` + fleet.EnvLedger + `, else
$XDG_STATE_HOME/bitsremote/ledger.db, else ~/.local/state/bitsremote/ledger.db;
mode 0600; never a password): the host, the request, the JobId and each step,
written before the step is taken. That is what lets "--resume" continue an
interrupted run without creating a job twice or forgetting one.

"ledger list" shows the runs (with --jobs, every job); "wait --run ID" waits
for a run's unfinished jobs (after "transfer --async"); "ledger prune" removes
finished runs (with --unfinished, also those never finished: they can then no
longer be resumed; their jobs stay on the hosts).`,
		Example: `  bitsremote ledger list
  bitsremote ledger list --jobs --run 20261121T101500Z-1a2b3c4d -o jsonl
  bitsremote ledger prune --older-than 720h`,
		Args: noArgs,
	}
	cmd.PersistentFlags().StringVar(&opts.Path, "ledger", "", "the ledger `FILE` (default $"+fleet.EnvLedger+" or the state directory's)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List runs, or with --jobs every job, in the ledger",
		Example: `  bitsremote ledger list
  bitsremote ledger list --jobs --run 20261121T101500Z-1a2b3c4d -o jsonl`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return ledgerListRun(opts) },
	}
	list.Flags().BoolVar(&opts.Jobs, "jobs", false, "list jobs instead of runs")
	list.Flags().StringVar(&opts.Run, "run", "", "only the run with this `ID`")
	prune := &cobra.Command{
		Use:   "prune",
		Short: "Remove finished runs from the ledger",
		Example: `  bitsremote ledger prune
  bitsremote ledger prune --older-than 720h
  bitsremote ledger prune --unfinished --ledger ./ledger.db`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return ledgerPruneRun(opts) },
	}
	prune.Flags().DurationVar(&opts.OlderThan, "older-than", 0, "only runs last changed longer ago than this (0: any)")
	prune.Flags().BoolVar(&opts.Unfinished, "unfinished", false, "also remove unfinished runs (they can no longer be resumed)")
	cmd.AddCommand(list, prune)
	return cmd
}

// runRecord is one run as "ledger list" prints it.
type runRecord struct {
	ID           string     `json:"id"`
	Command      string     `json:"command"`
	Created      time.Time  `json:"created"`
	Updated      time.Time  `json:"updated"`
	Finished     *time.Time `json:"finished"`
	Resumes      int        `json:"resumes"`
	Hosts        int        `json:"hosts"`
	Jobs         int        `json:"jobs"`
	Acknowledged int        `json:"acknowledged"`
	Failed       int        `json:"failed"`
	Open         int        `json:"open"`
}

func ledgerListRun(opts *LedgerOptions) error {
	f := opts.f
	path, err := ledgerPath(f, opts.Path)
	if err != nil {
		return err
	}
	led, err := fleet.OpenLedgerReadOnly(path)
	if errors.Is(err, fs.ErrNotExist) {
		f.IO.Warnf("no ledger at %s yet: no transfer or import-csv has recorded a job", path)
		if f.Conn.Output == "json" {
			f.IO.Printf("[]\n")
		}
		return nil
	}
	if err != nil {
		return usageErrorf("%w", err)
	}
	defer led.Close()
	out := newOutput(f.IO, f.Conn.Output, true)
	entries, err := led.Entries(opts.Run)
	if err != nil {
		return err
	}
	if opts.Jobs {
		for _, e := range entries {
			if err := out.emit(e.Host, e); err != nil {
				return err
			}
		}
		return out.flushKeepOrder(renderLedgerJobs)
	}
	runs, err := led.Runs()
	if err != nil {
		return err
	}
	for _, r := range runs {
		if opts.Run != "" && r.ID != opts.Run {
			continue
		}
		rec := runRecord{ID: r.ID, Command: r.Command, Created: r.Created, Updated: r.Updated, Resumes: r.Resumes}
		if !r.Finished.IsZero() {
			fin := r.Finished
			rec.Finished = &fin
		}
		hosts := map[string]bool{}
		for _, e := range entries {
			if e.RunID != r.ID {
				continue
			}
			hosts[e.Host] = true
			rec.Jobs++
			switch {
			case e.Step == fleet.StepAcknowledged:
				rec.Acknowledged++
			case e.Step.Final():
				rec.Failed++
			default:
				rec.Open++
			}
		}
		rec.Hosts = len(hosts)
		if err := out.emit("", rec); err != nil {
			return err
		}
	}
	return out.flushKeepOrder(renderLedgerRuns)
}

// flushKeepOrder is flush without sorting by host: the ledger's order
// (run, host, index) is already the one to show.
func (o *output) flushKeepOrder(render func(io.Writer, []record)) error {
	o.mu.Lock()
	recs := o.recs
	o.mu.Unlock()
	switch o.format {
	case "jsonl":
		return nil
	case "json":
		var b strings.Builder
		b.WriteString("[")
		for i, r := range recs {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString("\n  ")
			b.Write(r.json)
		}
		if len(recs) > 0 {
			b.WriteString("\n")
		}
		b.WriteString("]\n")
		o.io.Write([]byte(b.String()))
		return nil
	}
	var buf strings.Builder
	render(&buf, recs)
	o.io.Write([]byte(buf.String()))
	return nil
}

func renderLedgerRuns(w io.Writer, recs []record) {
	tw := newTable(w)
	fmt.Fprintln(tw, "RUN\tCOMMAND\tCREATED\tHOSTS\tJOBS\tDONE\tFAILED\tOPEN\tSTATUS")
	for _, r := range recs {
		rr := r.value.(runRecord)
		status := "unfinished (resume with --resume, or follow with wait --run)"
		if rr.Finished != nil {
			status = "finished"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", rr.ID, rr.Command, rr.Created.Local().Format(time.DateTime),
			rr.Hosts, rr.Jobs, rr.Acknowledged, rr.Failed, rr.Open, status)
	}
	tw.Flush()
}

func renderLedgerJobs(w io.Writer, recs []record) {
	tw := newTable(w)
	fmt.Fprintln(tw, "RUN\tHOST\tROW\tJOBID\tSTEP\tSTATE\tUPDATED\tERROR")
	for _, r := range recs {
		e := r.value.(fleet.Entry)
		id := e.JobID
		if id == "" {
			id = "-"
		}
		row := "-"
		if e.Row > 0 {
			row = fmt.Sprint(e.Row)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.RunID, e.Host, row, id, e.Step, e.State,
			e.Updated.Local().Format(time.DateTime), e.Error)
	}
	tw.Flush()
}

func ledgerPruneRun(opts *LedgerOptions) error {
	f := opts.f
	if opts.OlderThan < 0 {
		return usageErrorf("--older-than must not be negative")
	}
	path, err := ledgerPath(f, opts.Path)
	if err != nil {
		return err
	}
	led, err := fleet.OpenLedger(path)
	if err != nil {
		return usageErrorf("%w", err)
	}
	defer led.Close()
	po := fleet.PruneOptions{Unfinished: opts.Unfinished}
	if opts.OlderThan > 0 {
		po.Before = f.Clock.Now().Add(-opts.OlderThan)
	}
	runs, jobs, err := led.Prune(po)
	if err != nil {
		return err
	}
	f.IO.Printf("removed %d run(s) and %d job record(s) from %s\n", runs, jobs, path)
	return nil
}

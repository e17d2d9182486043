package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bitsremote/bitsremote/bitsprov"
)

// languageEnUS asks GetError for English descriptions (LANGID 1033), so
// output does not depend on the host's locale.
const languageEnUS = 1033

// jobErrorRecord converts GetError's answer to the "error" object.
func jobErrorRecord(e *bitsprov.JobError) *jobError {
	if e == nil {
		return nil
	}
	name, _, _ := bitsprov.LookupCode(e.Code)
	return &jobError{
		Context:            e.Context.String(),
		ContextDescription: strings.TrimSpace(e.ContextDescription),
		Code:               fmt.Sprintf("0x%08X", e.Code),
		CodeName:           name,
		Description:        strings.TrimSpace(e.Description),
	}
}

// jobWithError reads a job and, when it is in Error or TransientError,
// why. A job that left the error state between the two calls just has no
// error object.
func jobWithError(ctx context.Context, c *bitsprov.Client, host, id string) (jobRecord, error) {
	j, err := c.Job(ctx, id)
	if err != nil {
		return jobRecord{}, err
	}
	rec := jobRecord{Host: host, Job: j}
	if err := addJobError(ctx, c, &rec); err != nil {
		return jobRecord{}, err
	}
	return rec, nil
}

// addJobError fills rec.Error for a job in (transient) error.
func addJobError(ctx context.Context, c *bitsprov.Client, rec *jobRecord) error {
	if rec.Job.State != bitsprov.StateError && rec.Job.State != bitsprov.StateTransientError {
		return nil
	}
	je, err := c.GetError(ctx, rec.Job.JobID, languageEnUS)
	switch {
	case errors.Is(err, bitsprov.ErrErrorInfoUnavailable):
		return nil
	case err != nil:
		return err
	}
	rec.Error = jobErrorRecord(je)
	return nil
}

// GetOptions are the options of "get".
type GetOptions struct {
	f     *Factory
	JobID string
}

// NewCmdGet builds "get JOBID".
func NewCmdGet(f *Factory) *cobra.Command {
	opts := &GetOptions{f: f}
	return &cobra.Command{
		Use:   "get JOBID",
		Short: "Show one job (bitsadmin /info /verbose)",
		Long: `Show one job: state, priority, progress, files and, for a job in Error or
TransientError, why (GetError). An unknown job id is the host's answer: exit 5.`,
		Example: `  bitsremote get {6F6D6B3E-1B8A-4F3C-9C2E-3A3D1C2B4A5F} -H server1 -u admin
  bitsremote get {6F6D6B3E-1B8A-4F3C-9C2E-3A3D1C2B4A5F} -H server1 -u admin -o json | jq .state`,
		Args: exactArgs("JOBID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.JobID = args[0]
			return getRun(cmd.Context(), opts)
		},
	}
}

func getRun(ctx context.Context, opts *GetOptions) error {
	if err := checkJobID(opts.JobID); err != nil {
		return err
	}
	id := normalizeJobID(opts.JobID)
	f := opts.f
	out := newOutput(f.IO, f.Conn.Output, false)
	err := f.forEachHost(ctx, out, func(ctx context.Context, s *session) error {
		rec, err := jobWithError(ctx, s.Bits, s.Endpoint.Name, id)
		if err != nil {
			return err
		}
		return out.emit(s.Endpoint.Name, rec)
	})
	return flushWith(out, renderJobDetail, err)
}

// flushWith prints the collected output and returns the command's error
// (or the printing error when the command succeeded).
func flushWith(out *output, render func(io.Writer, []record), err error) error {
	if ferr := out.flush(render); ferr != nil && err == nil {
		return ferr
	}
	return err
}

// ListOptions are the options of "list".
type ListOptions struct {
	f      *Factory
	States []string
}

// NewCmdList builds "list".
func NewCmdList(f *Factory) *cobra.Command {
	opts := &ListOptions{f: f}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the jobs on each host (bitsadmin /list /allusers)",
		Long: `List the BITS provider's jobs on each host. Finished jobs (Acknowledged,
Cancelled) have left the queue and are not listed. --state keeps only jobs in
the given states (names as in PowerShell's JobState: Queued, Connecting,
Transferring, Suspended, Error, TransientError, Transferred).`,
		Example: `  bitsremote list -H server1 -u admin
  bitsremote list --state error,transienterror --inventory hosts.txt -u admin -o jsonl`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return listRun(cmd.Context(), opts) },
	}
	cmd.Flags().StringSliceVar(&opts.States, "state", nil, "only jobs in these `STATES` (comma-separated or repeated)")
	return cmd
}

func listRun(ctx context.Context, opts *ListOptions) error {
	var filter bitsprov.JobFilter
	for _, s := range opts.States {
		st, err := bitsprov.ParseState(s)
		if err != nil {
			return usageErrorf("--state: %w", err)
		}
		filter.States = append(filter.States, st)
	}
	f := opts.f
	out := newOutput(f.IO, f.Conn.Output, true)
	err := f.forEachHost(ctx, out, func(ctx context.Context, s *session) error {
		jobs, err := s.Bits.Jobs(ctx, filter)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			rec := jobRecord{Host: s.Endpoint.Name, Job: j}
			if err := addJobError(ctx, s.Bits, &rec); err != nil && !errors.Is(err, bitsprov.ErrNotFound) {
				return err
			}
			if err := out.emit(s.Endpoint.Name, rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && out.format == "table" && out.count() == 0 {
		f.IO.Warnf("no jobs")
	}
	return flushWith(out, renderJobTable(out.multiHost), err)
}

// actionRecord is what resume, suspend, cancel, complete, priority,
// add-file, set-credentials and set-proxy print.
type actionRecord struct {
	Host   string `json:"host"`
	JobID  string `json:"jobId"`
	Action string `json:"action"`
	// ReturnCode is the method's ReturnValue when it was a success other
	// than 0 (BG_S_PARTIAL_COMPLETE), so scripts can see partial results.
	ReturnCode     string `json:"returnCode,omitempty"`
	ReturnCodeName string `json:"returnCodeName,omitempty"`
	Detail         string `json:"detail,omitempty"`
}

func renderAction(r record) string {
	a, ok := r.value.(actionRecord)
	if !ok {
		return ""
	}
	s := fmt.Sprintf("%s: %s %s", a.Host, a.Action, a.JobID)
	if a.Detail != "" {
		s += ": " + a.Detail
	}
	if a.ReturnCodeName != "" {
		s += " (" + a.ReturnCodeName + ")"
	}
	return s
}

// jobAction runs fn for JOBID on every host and prints an actionRecord.
func jobAction(ctx context.Context, f *Factory, rawID, action string, fn func(ctx context.Context, s *session, id string) (actionRecord, error)) error {
	if err := checkJobID(rawID); err != nil {
		return err
	}
	id := normalizeJobID(rawID)
	out := newOutput(f.IO, f.Conn.Output, false)
	err := f.forEachHost(ctx, out, func(ctx context.Context, s *session) error {
		rec, err := fn(ctx, s, id)
		if err != nil {
			return err
		}
		rec.Host, rec.JobID, rec.Action = s.Endpoint.Name, id, action
		return out.emit(s.Endpoint.Name, rec)
	})
	return flushWith(out, renderLines(renderAction), err)
}

// SetStateOptions are the options of resume, suspend, cancel and complete.
type SetStateOptions struct {
	f      *Factory
	Action bitsprov.JobAction
	JobID  string
}

// NewCmdSetState builds resume, suspend, cancel or complete.
func NewCmdSetState(f *Factory, verb string) *cobra.Command {
	opts := &SetStateOptions{f: f}
	var short, long, past string
	switch verb {
	case "resume":
		opts.Action, past = bitsprov.ActionResume, "resumed"
		short = "Start or restart a job's transfer (Resume-BitsTransfer -Asynchronous)"
		long = "Resume a suspended job, or retry one in Error or TransientError (SetJobState 2).\nA job without files cannot be resumed (BG_E_EMPTY, exit 5)."
	case "suspend":
		opts.Action, past = bitsprov.ActionSuspend, "suspended"
		short = "Pause a job (Suspend-BitsTransfer)"
		long = "Suspend a job (SetJobState 3). It keeps its progress; resume continues."
	case "cancel":
		opts.Action, past = bitsprov.ActionCancel, "cancelled"
		short = "Cancel a job and delete its files (Remove-BitsTransfer)"
		long = "Cancel a job (SetJobState 0): BITS deletes the partial and finished files and\nthe job leaves the queue."
	case "complete":
		opts.Action, past = bitsprov.ActionComplete, "completed"
		short = "Finish a job and make its files available (Complete-BitsTransfer)"
		long = `Complete a job (SetJobState 1): BITS renames the finished files into place and
the job leaves the queue. A download completed before every file transferred
keeps only the finished files (BG_S_PARTIAL_COMPLETE, reported, exit 0); an
upload can only be completed once Transferred.`
	}
	return &cobra.Command{
		Use:     verb + " JOBID",
		Short:   short,
		Long:    long,
		Example: fmt.Sprintf("  bitsremote %s {6F6D6B3E-1B8A-4F3C-9C2E-3A3D1C2B4A5F} -H server1 -u admin", verb),
		Args:    exactArgs("JOBID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.JobID = args[0]
			return jobAction(cmd.Context(), f, opts.JobID, past, func(ctx context.Context, s *session, id string) (actionRecord, error) {
				code, err := s.Bits.SetJobState(ctx, id, opts.Action)
				if err != nil {
					return actionRecord{}, err
				}
				var rec actionRecord
				if code != bitsprov.CodeOK {
					rec.ReturnCode = fmt.Sprintf("0x%08X", uint32(code))
					rec.ReturnCodeName = code.String()
				}
				return rec, nil
			})
		},
	}
}

// PriorityOptions are the options of "priority".
type PriorityOptions struct {
	f     *Factory
	JobID string
	Level string
}

// NewCmdPriority builds "priority JOBID LEVEL".
func NewCmdPriority(f *Factory) *cobra.Command {
	opts := &PriorityOptions{f: f}
	return &cobra.Command{
		Use:   "priority JOBID LEVEL",
		Short: "Set a job's priority: foreground, high, normal or low (bitsadmin /setpriority)",
		Long: `Set a job's priority (Get, patch Priority, Put). Foreground transfers at once
and competes with applications for bandwidth; high, normal and low are
background priorities.`,
		Example: "  bitsremote priority {6F6D6B3E-1B8A-4F3C-9C2E-3A3D1C2B4A5F} foreground -H server1 -u admin",
		Args:    exactArgs("JOBID", "LEVEL"),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 1 {
				return []string{"foreground", "high", "normal", "low"}, cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.JobID, opts.Level = args[0], args[1]
			pr, err := bitsprov.ParsePriority(opts.Level)
			if err != nil {
				return usageErrorf("priority: %w", err)
			}
			return jobAction(cmd.Context(), f, opts.JobID, "priority", func(ctx context.Context, s *session, id string) (actionRecord, error) {
				return actionRecord{Detail: pr.String()}, s.Bits.SetPriority(ctx, id, pr)
			})
		},
	}
}

// AddFileOptions are the options of "add-file".
type AddFileOptions struct {
	f                *Factory
	JobID, URL, Path string
}

// NewCmdAddFile builds "add-file JOBID URL LOCAL".
func NewCmdAddFile(f *Factory) *cobra.Command {
	opts := &AddFileOptions{f: f}
	return &cobra.Command{
		Use:   "add-file JOBID URL LOCAL",
		Short: "Add a file to a download job (Add-BitsFile, bitsadmin /addfile)",
		Long: `Add a file to a download job: URL is where the host downloads from, LOCAL
the full path on the host (C:\...). Upload jobs hold exactly one file.`,
		Example: `  bitsremote add-file {6F6D6B3E-1B8A-4F3C-9C2E-3A3D1C2B4A5F} https://files.example.com/b.iso 'C:\Data\b.iso' -H server1 -u admin`,
		Args:    exactArgs("JOBID", "URL", "LOCAL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.JobID, opts.URL, opts.Path = args[0], args[1], args[2]
			if err := checkRemoteURL(opts.URL); err != nil {
				return err
			}
			return jobAction(cmd.Context(), f, opts.JobID, "added file to", func(ctx context.Context, s *session, id string) (actionRecord, error) {
				return actionRecord{Detail: opts.URL + " -> " + opts.Path}, s.Bits.AddFile(ctx, id, opts.URL, opts.Path)
			})
		},
	}
}

// checkRemoteURL rejects what BITS cannot transfer from: it speaks
// http(s) and UNC/SMB paths.
func checkRemoteURL(u string) error {
	l := strings.ToLower(u)
	if strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://") || strings.HasPrefix(u, `\\`) || strings.HasPrefix(l, "file://") {
		return nil
	}
	return usageErrorf("remote URL %q: want http://, https:// or a UNC path (\\\\server\\share\\file)", u)
}

// ErrorOptions are the options of "error".
type ErrorOptions struct {
	f     *Factory
	JobID string
}

// errorRecord is what "error" prints.
type errorRecord struct {
	Host  string    `json:"host"`
	JobID string    `json:"jobId"`
	Error *jobError `json:"error"`
}

// NewCmdError builds "error JOBID".
func NewCmdError(f *Factory) *cobra.Command {
	opts := &ErrorOptions{f: f}
	return &cobra.Command{
		Use:   "error JOBID",
		Short: "Say why a job is in Error or TransientError (bitsadmin /geterror)",
		Long: `Ask the host why a job failed (GetError): the context (local file, remote file,
transport...), the HRESULT with its name (BG_E_HTTP_ERROR_404...) and the
description. A job that is not in error has no error information
(BG_E_ERROR_INFORMATION_UNAVAILABLE, exit 5).`,
		Example: "  bitsremote error {6F6D6B3E-1B8A-4F3C-9C2E-3A3D1C2B4A5F} -H server1 -u admin",
		Args:    exactArgs("JOBID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.JobID = args[0]
			return errorRun(cmd.Context(), opts)
		},
	}
}

func errorRun(ctx context.Context, opts *ErrorOptions) error {
	if err := checkJobID(opts.JobID); err != nil {
		return err
	}
	id := normalizeJobID(opts.JobID)
	f := opts.f
	out := newOutput(f.IO, f.Conn.Output, false)
	err := f.forEachHost(ctx, out, func(ctx context.Context, s *session) error {
		je, err := s.Bits.GetError(ctx, id, languageEnUS)
		if err != nil {
			return err
		}
		return out.emit(s.Endpoint.Name, errorRecord{Host: s.Endpoint.Name, JobID: id, Error: jobErrorRecord(je)})
	})
	return flushWith(out, renderLines(func(r record) string {
		e, ok := r.value.(errorRecord)
		if !ok || e.Error == nil {
			return ""
		}
		s := fmt.Sprintf("%s: %s: %s %s in %s", e.Host, e.JobID, e.Error.Code, dash(e.Error.CodeName), e.Error.Context)
		if e.Error.Description != "" {
			s += ": " + e.Error.Description
		}
		return s
	}), err)
}

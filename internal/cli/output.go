package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/bitsremote/bitsremote/bitsprov"
)

// output collects a command's results and prints them in the chosen
// format. jsonl streams one object per line as results arrive; json and
// table print once every host is done, so hosts never interleave.
type output struct {
	io     *IOStreams
	format string
	// collection makes json print an array even for one result (list,
	// enumerate, import-csv); otherwise one result prints as an object.
	collection bool
	// multiHost is set when more than one host runs: json prints an
	// array and failures become records.
	multiHost bool

	mu   sync.Mutex
	recs []record
}

// record is one result: its JSON form and what a table shows of it.
type record struct {
	host string
	json json.RawMessage
	// value is the Go value behind the record, for table renderers.
	value any
}

func newOutput(io *IOStreams, format string, collection bool) *output {
	return &output{io: io, format: format, collection: collection}
}

// emit adds a result. v is marshalled with encoding/json; a host field
// is put first when host is not empty and v does not carry one.
func (o *output) emit(host string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("render result: %w", err)
	}
	r := record{host: host, json: b, value: v}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.format == "jsonl" {
		o.io.Write(append(b, '\n'))
		return nil
	}
	o.recs = append(o.recs, r)
	return nil
}

// count returns the number of results collected so far.
func (o *output) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.recs)
}

// failureRecord is what fleet JSON output says of a host that failed.
type failureRecord struct {
	Host string `json:"host"`
	// Row is the CSV row of import-csv, when the failure is one row's.
	Row      int    `json:"row,omitempty"`
	ExitCode int    `json:"exitCode"`
	Failure  string `json:"failure"`
}

// failure records a failed host (fleet mode only; one host's failure is
// the command's error).
func (o *output) failure(host string, code int, err error) {
	if o.format == "table" {
		return
	}
	_ = o.emit(host, failureRecord{Host: host, ExitCode: code, Failure: err.Error()})
}

// flush prints collected results: json as an object or array, table
// through render (called with the records sorted by host, stable).
func (o *output) flush(render func(w io.Writer, recs []record)) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch o.format {
	case "jsonl":
		return nil
	case "json":
		var buf bytes.Buffer
		if len(o.recs) == 0 && !o.collection && !o.multiHost {
			// One host, one result expected, and it failed: the
			// error on stderr is the whole answer.
			return nil
		}
		if len(o.recs) == 1 && !o.collection && !o.multiHost {
			if err := json.Indent(&buf, o.recs[0].json, "", "  "); err != nil {
				return err
			}
		} else {
			buf.WriteString("[")
			for i, r := range o.sorted() {
				if i > 0 {
					buf.WriteString(",")
				}
				buf.WriteString("\n  ")
				if err := json.Indent(&buf, r.json, "  ", "  "); err != nil {
					return err
				}
			}
			if len(o.recs) > 0 {
				buf.WriteString("\n")
			}
			buf.WriteString("]")
		}
		buf.WriteString("\n")
		o.io.Write(buf.Bytes())
		return nil
	}
	var tableRecs []record
	for _, r := range o.sorted() {
		if _, ok := r.value.(failureRecord); !ok {
			tableRecs = append(tableRecs, r)
		}
	}
	if render != nil && len(tableRecs) > 0 {
		var buf bytes.Buffer
		render(&buf, tableRecs)
		o.io.Write(buf.Bytes())
	}
	return nil
}

// sorted orders records by host, keeping each host's order; results from
// concurrent hosts arrive in any order.
func (o *output) sorted() []record {
	rs := append([]record(nil), o.recs...)
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].host < rs[j].host })
	return rs
}

// jobRecord is a job as the CLI prints it: bitsprov's JSON form (the
// contract's field names) with the host first and, when known, the
// job's error and a wait outcome.
type jobRecord struct {
	Host string
	// Row is import-csv's row number (0: not from a CSV file).
	Row   int
	Job   *bitsprov.Job
	Error *jobError
	// Outcome is the wait's verdict; nil when the job was not waited
	// for or the wait ended without one (interrupted, or an error).
	Outcome *outcomeRecord
}

// jobError is the "error" object: what GetError said.
type jobError struct {
	Context            string `json:"context"`
	ContextDescription string `json:"contextDescription,omitempty"`
	Code               string `json:"code"`
	CodeName           string `json:"codeName"`
	Description        string `json:"description"`
}

// outcomeRecord is the "outcome" object of wait and transfer.
type outcomeRecord struct {
	// Result is the poller's verdict: "Completed", "Cancelled", "Left",
	// "TimedOut", "Gone", "Failed" (the Complete or Cancel failed), or
	// "Async" when transfer --async did not wait.
	Result string `json:"result"`
	// Elapsed is how long the wait took, in seconds.
	Elapsed float64 `json:"elapsedSeconds"`
	// Polls counts the reads of the job.
	Polls int `json:"polls"`
	// Detail says what happened, in a sentence.
	Detail string `json:"detail,omitempty"`
	// ReturnCode is the Complete or Cancel's non-zero ReturnValue
	// (BG_S_PARTIAL_COMPLETE).
	ReturnCode     string `json:"returnCode,omitempty"`
	ReturnCodeName string `json:"returnCodeName,omitempty"`
}

// MarshalJSON splices the host, error and outcome around the job's own
// JSON so field order is stable: host first, then the job's fields.
func (r jobRecord) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	host, _ := json.Marshal(r.Host)
	buf.WriteString(`{"host":`)
	buf.Write(host)
	if r.Row > 0 {
		fmt.Fprintf(&buf, `,"row":%d`, r.Row)
	}
	if r.Job != nil {
		jb, err := json.Marshal(displayJob(r.Job))
		if err != nil {
			return nil, err
		}
		if len(jb) > 2 {
			buf.WriteByte(',')
			buf.Write(jb[1 : len(jb)-1])
		}
	}
	buf.WriteString(`,"error":`)
	eb, err := json.Marshal(r.Error)
	if err != nil {
		return nil, err
	}
	buf.Write(eb)
	if r.Outcome != nil {
		ob, err := json.Marshal(r.Outcome)
		if err != nil {
			return nil, err
		}
		buf.WriteString(`,"outcome":`)
		buf.Write(ob)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// renderJobTable prints one row per job.
func renderJobTable(multiHost bool) func(io.Writer, []record) {
	return func(w io.Writer, recs []record) {
		tw := newTable(w)
		if multiHost {
			fmt.Fprint(tw, "HOST\t")
		}
		fmt.Fprintln(tw, "JOBID\tNAME\tSTATE\tPRIORITY\tFILES\tBYTES\tOWNER")
		for _, r := range recs {
			jr, ok := r.value.(jobRecord)
			if !ok || jr.Job == nil {
				continue
			}
			j := jr.Job
			if multiHost {
				fmt.Fprintf(tw, "%s\t", jr.Host)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", j.JobID, dash(j.DisplayName), j.State, j.Priority,
				j.FilesTransferred, j.FilesTotal, progressText(j.BytesTransferred, j.BytesTotal), dash(j.Owner))
		}
		tw.Flush()
	}
}

// renderJobDetail prints each job as "Field: value" lines, like
// bitsadmin /info /verbose.
func renderJobDetail(w io.Writer, recs []record) {
	for i, r := range recs {
		jr, ok := r.value.(jobRecord)
		if !ok || jr.Job == nil {
			continue
		}
		if i > 0 {
			fmt.Fprintln(w)
		}
		j := displayJob(jr.Job)
		tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
		line := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
		line("Host", jr.Host)
		line("JobId", j.JobID)
		line("DisplayName", dash(j.DisplayName))
		if j.Description != "" {
			line("Description", j.Description)
		}
		if j.Type != nil {
			line("Type", j.Type.String())
		}
		line("State", fmt.Sprintf("%s (%d)", j.State, uint16(j.State)))
		line("Priority", j.Priority.String())
		line("Owner", dash(j.Owner))
		line("Files", fmt.Sprintf("%d of %d transferred", j.FilesTransferred, j.FilesTotal))
		line("Bytes", progressText(j.BytesTransferred, j.BytesTotal))
		line("Created", timeText(j.Created))
		line("Modified", timeText(j.Modified))
		line("Completed", timeText(j.Completed))
		if j.TransientErrorCount > 0 {
			line("TransientErrors", fmt.Sprint(j.TransientErrorCount))
		}
		if e := jr.Error; e != nil {
			line("Error", fmt.Sprintf("%s %s in %s: %s", e.Code, e.CodeName, e.Context, e.Description))
		}
		if o := jr.Outcome; o != nil {
			s := fmt.Sprintf("%s after %.1fs", o.Result, o.Elapsed)
			if o.Detail != "" {
				s += ": " + o.Detail
			}
			line("Outcome", s)
		}
		for k, f := range j.Files {
			line(fmt.Sprintf("File %d", k+1), fmt.Sprintf("%s -> %s (%s%s)", f.RemoteURL, f.LocalFile,
				progressText(f.BytesTransferred, f.BytesTotal), map[bool]string{true: ", complete"}[f.Completed]))
		}
		tw.Flush()
	}
}

// displayJob is the job as people and scripts see it: the description
// without the marker bitsprov appends to find a job again after a lost
// reply ("nightly [bitsremote:<uuid>]" shows as "nightly"). Only markers
// bitsprov makes are removed, so a user's own "[daily]" stays.
func displayJob(j *bitsprov.Job) *bitsprov.Job {
	text, marker := bitsprov.SplitMarker(j.Description)
	if !strings.HasPrefix(marker, bitsprov.MarkerPrefix) {
		return j
	}
	c := *j
	c.Description = text
	return &c
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// progressText renders "1.5 MiB / 3.0 MiB (50%)", or "1.5 MiB / ?" while
// the size is unknown.
func progressText(done uint64, total *uint64) string {
	if total == nil {
		return humanBytes(done) + " / ?"
	}
	if *total == 0 {
		return humanBytes(done) + " / 0 B"
	}
	return fmt.Sprintf("%s / %s (%d%%)", humanBytes(done), humanBytes(*total), done*100 / *total)
}

// humanBytes renders a byte count in binary units.
func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// renderLines prints each record's "text" rendering: used by commands whose
// table form is a sentence per host.
func renderLines(text func(record) string) func(io.Writer, []record) {
	return func(w io.Writer, recs []record) {
		for _, r := range recs {
			s := text(r)
			if s == "" {
				continue
			}
			if !strings.HasSuffix(s, "\n") {
				s += "\n"
			}
			io.WriteString(w, s)
		}
	}
}

// newTable returns the tabwriter every table uses.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

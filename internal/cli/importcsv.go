package cli

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// NewCmdImportCSV builds "import-csv FILE".
func NewCmdImportCSV(f *Factory) *cobra.Command {
	opts := &TransferOptions{f: f}
	var file string
	cmd := &cobra.Command{
		Use:   "import-csv FILE",
		Short: "One transfer per CSV row, like Import-CSV | Start-BitsTransfer",
		Long: `Read FILE, a CSV file with a header naming the columns Source and Destination
(case-insensitive; other columns are ignored; a leading "#TYPE" line and a
UTF-8 BOM, as Windows PowerShell's Export-CSV writes, are skipped), and run
one job per row on every host: download from Source (a URL) to Destination (a
path on the host), or with --type upload from Source (a path on the host) to
Destination (a URL). "-" reads stdin.

A bad row is reported on stderr with its row number and skipped; the good rows
still run and are reported, and the exit code is then at least 2. Jobs are
created one after another on each host, then followed together (one read of
the host's queue per poll for all of them), synchronously unless --async.

Jobs are recorded in the ledger as for transfer; an interrupted run is
continued with the same command and --resume, without creating any job twice.`,
		Example: `  bitsremote import-csv transfers.csv -H server1 -u admin
  printf 'Source,Destination\nhttps://f.example.com/a.iso,C:\\Data\\a.iso\n' | bitsremote import-csv - -H server1 -u admin -o jsonl`,
		Args: exactArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			file = args[0]
			return importCSVRun(cmd.Context(), opts, file)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&opts.Async, "async", false, "return after resume with the JobIds")
	fl.StringVar(&opts.Priority, "priority", "foreground", "foreground, high, normal or low")
	fl.StringVar(&opts.Name, "name", "BITS Transfer", "job display name")
	fl.StringVar(&opts.Description, "description", "", "job description")
	fl.StringVar(&opts.Type, "type", "download", "download or upload")
	fl.StringVar(&opts.JobUser, "job-user", "", "user the jobs authenticate to the server with")
	fl.StringVar(&opts.JobAuth, "job-auth", "negotiate", "scheme for --job-user: basic, digest, ntlm, negotiate or passport")
	fl.StringVar(&opts.JobPasswordFile, "job-password-file", "", "read the jobs' password from the first line of `FILE`")
	fl.StringVar(&opts.ProxyUsage, "proxy-usage", "", "systemdefault, noproxy, autodetect or override")
	fl.StringSliceVar(&opts.ProxyList, "proxy-list", nil, "proxies for override, host:port")
	fl.StringSliceVar(&opts.ProxyBypass, "proxy-bypass", nil, "hosts that skip the proxy")
	addRetryFlags(cmd, opts)
	opts.wait.add(cmd, "cancel")
	opts.ledger.add(cmd)
	return cmd
}

// csvRow is one row of the file: its number (1 is the first data row),
// the line it starts on, and its pair, or why it is bad.
type csvRow struct {
	N           int
	Line        int
	Source      string
	Destination string
	Err         error
}

// readTransferCSV reads Source/Destination rows. A file-level problem
// (unreadable, no header, no Source or Destination column) is an error;
// a row-level problem is kept in the row.
func readTransferCSV(r io.Reader, name string) ([]csvRow, error) {
	data, err := io.ReadAll(io.LimitReader(r, 64<<20))
	if err != nil {
		return nil, usageErrorf("read %s: %w", name, err)
	}
	text := strings.TrimPrefix(string(data), "\ufeff")
	lines := 0
	if strings.HasPrefix(text, "#TYPE") || strings.HasPrefix(text, "#type") {
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			text = text[i+1:]
		} else {
			text = ""
		}
		lines = 1
	}
	cr := csv.NewReader(strings.NewReader(text))
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, usageErrorf("%s: empty file; want a header line \"Source,Destination\"", name)
	}
	if err != nil {
		return nil, usageErrorf("%s: header: %w", name, err)
	}
	src, dst := -1, -1
	for i, h := range header {
		switch strings.ToLower(strings.TrimSpace(h)) {
		case "source":
			src = i
		case "destination":
			dst = i
		}
	}
	if src < 0 || dst < 0 {
		return nil, usageErrorf("%s line %d: the header %q must name the columns Source and Destination", name, lines+1, strings.Join(header, ","))
	}
	var rows []csvRow
	for n := 1; ; n++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				rows = append(rows, csvRow{N: n, Line: pe.StartLine + lines, Err: fmt.Errorf("%s row %d (line %d): %v", name, n, pe.StartLine+lines, pe.Err)})
				continue
			}
			return nil, usageErrorf("read %s: %w", name, err)
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		// FieldPos is only valid after a successful Read.
		line, _ := cr.FieldPos(0)
		line += lines
		row := csvRow{N: n, Line: line}
		if src >= len(rec) || dst >= len(rec) {
			row.Err = fmt.Errorf("%s row %d (line %d): %d fields; want Source and Destination", name, n, line, len(rec))
		} else {
			row.Source, row.Destination = strings.TrimSpace(rec[src]), strings.TrimSpace(rec[dst])
			switch {
			case row.Source == "":
				row.Err = fmt.Errorf("%s row %d (line %d): Source is empty", name, n, line)
			case row.Destination == "":
				row.Err = fmt.Errorf("%s row %d (line %d): Destination is empty", name, n, line)
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func importCSVRun(ctx context.Context, opts *TransferOptions, file string) error {
	f := opts.f
	var in io.Reader = f.IO.In
	if file != "-" {
		fh, err := os.Open(file)
		if err != nil {
			return usageErrorf("import-csv: %w", err)
		}
		defer fh.Close()
		in = fh
	}
	rows, err := readTransferCSV(in, file)
	if err != nil {
		return err
	}
	t, err := parseJobType(opts.Type)
	if err != nil {
		return err
	}
	st, err := opts.settings()
	if err != nil {
		return err
	}
	// Check every row before contacting a host; bad rows are reported
	// once, not per host.
	var specs []transferSpec
	badRows := 0
	for _, r := range rows {
		if r.Err == nil {
			files, ferr := transferFiles(t, []string{r.Source}, r.Destination)
			if ferr != nil {
				r.Err = fmt.Errorf("%s row %d (line %d): %w", file, r.N, r.Line, errors.Unwrap(ferr))
			} else {
				specs = append(specs, transferSpec{Row: r.N, Opts: st.jobOptions(files)})
				continue
			}
		}
		badRows++
		f.IO.Warnf("bitsremote: %v (row skipped)", r.Err)
	}
	if len(specs) == 0 {
		if badRows > 0 {
			return usageErrorf("%s: no usable rows (%d bad)", file, badRows)
		}
		return usageErrorf("%s: no rows after the header", file)
	}

	out := newOutput(f.IO, f.Conn.Output, true)
	err = fleetTransfer(ctx, f, "import-csv", &opts.ledger, st, specs, out)
	err = flushWith(out, renderImportTable(out), err)
	if badRows > 0 {
		code := worst(ExitUsage, ExitCode(err))
		msg := fmt.Errorf("%d bad row(s) in %s skipped", badRows, file)
		if err != nil {
			msg = fmt.Errorf("%w; %d bad row(s) in %s skipped", err, badRows, file)
		}
		return &exitError{code: code, err: msg}
	}
	return err
}

// renderImportTable prints one row per job with its CSV row and outcome.
func renderImportTable(out *output) func(io.Writer, []record) {
	return func(w io.Writer, recs []record) {
		tw := newTable(w)
		if out.multiHost {
			fmt.Fprint(tw, "HOST\t")
		}
		fmt.Fprintln(tw, "ROW\tJOBID\tSTATE\tBYTES\tRESULT")
		for _, r := range recs {
			jr, ok := r.value.(jobRecord)
			if !ok || jr.Job == nil {
				continue
			}
			if out.multiHost {
				fmt.Fprintf(tw, "%s\t", jr.Host)
			}
			result := "-"
			if jr.Outcome != nil {
				result = jr.Outcome.Result
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", jr.Row, jr.Job.JobID, jr.Job.State, progressText(jr.Job.BytesTransferred, jr.Job.BytesTotal), result)
		}
		tw.Flush()
	}
}

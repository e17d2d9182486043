package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/bitsremote/bitsremote/internal/hostcheck"
)

// NewCmdHost builds "host check" and "host prepare".
func NewCmdHost(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "host",
		Short: "Check whether hosts can run BITS jobs, and prepare them",
		Long: `The BITS provider that bitsremote drives exists only where the Windows Server
feature BITS-Compact-Server is installed. "host check" tells, per host, whether
WinRM answers, our credentials work and the provider is there, and reads the OS
and the feature's state through the WinRS remote shell. "host prepare" installs
the feature through the shell (Install-WindowsFeature) where it is missing.`,
		Args: noArgs,
	}
	cmd.AddCommand(newCmdHostCheck(f), newCmdHostPrepare(f))
	return cmd
}

// HostOptions are the options of "host check" and "host prepare".
type HostOptions struct {
	f *Factory
	// Yes lets prepare change the hosts; without it prepare only says
	// what it would run.
	Yes bool
}

func newCmdHostCheck(f *Factory) *cobra.Command {
	opts := &HostOptions{f: f}
	return &cobra.Command{
		Use:   "check",
		Short: "Tell whether each host can run BITS jobs",
		Long: `Check each host: WinRM reachable (Identify), credentials accepted, the BITS
provider present (a Get on BitsClientJob: a missing root\microsoft\bits
namespace means the BITS-Compact-Server feature is not installed), how the
traffic is protected, and through the remote shell the OS version and the
feature's install state.

Exit code 0 when every host is ready, 1 when a host is not ready (for example
the provider is missing), 3 when credentials are refused, 4 when a host cannot
be reached, 5 for another fault; the highest wins.`,
		Example: `  bitsremote host check -H server1 -u 'CORP\admin'
  bitsremote host check --inventory hosts.txt -u 'CORP\admin' -o jsonl | jq 'select(.ready|not)'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return hostCheckRun(cmd.Context(), opts) },
	}
}

func newCmdHostPrepare(f *Factory) *cobra.Command {
	opts := &HostOptions{f: f}
	cmd := &cobra.Command{
		Use:   "prepare",
		Short: "Install the BITS-Compact-Server feature where the BITS provider is missing",
		Long: `Check each host and, where the BITS provider is missing, install the
BITS-Compact-Server feature through the WinRS remote shell:

  ` + hostcheck.ScriptInstall + `

then check again. Without --yes nothing is changed: prepare says what it would
run. Hosts that are ready are left alone. Exit codes as for "host check", on the
final state of each host.`,
		Example: `  bitsremote host prepare -H server1 -u 'CORP\admin'
  bitsremote host prepare --inventory hosts.txt -u 'CORP\admin' --yes -o json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return hostPrepareRun(cmd.Context(), opts) },
	}
	cmd.Flags().BoolVar(&opts.Yes, "yes", false, "install the feature (without it, only say what would run)")
	return cmd
}

// reportCode is a host's exit code: 0 ready, the error's code when an
// error stopped the check, else 1 (checked, not ready).
func reportCode(r *hostcheck.Report) int {
	switch {
	case r.Ready:
		return ExitOK
	case r.Err != nil:
		return max(ExitCode(r.Err), ExitJobFailed)
	}
	return ExitJobFailed
}

// hostTally collects per-host exit codes across the fan-out.
type hostTally struct {
	mu       sync.Mutex
	total    int
	worst    int
	notReady []string
	first    string // the only not-ready host's first problem
}

func (t *hostTally) add(host string, code int, problems []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total++
	t.worst = worst(t.worst, code)
	if code != ExitOK {
		t.notReady = append(t.notReady, host)
		if len(problems) > 0 {
			t.first = problems[0]
		}
	}
}

// err is the command's error: nil when every host is ready; the findings
// were printed already, so this only sets the exit code and a last line.
func (t *hostTally) err() error {
	if t.worst == ExitOK {
		return nil
	}
	msg := fmt.Errorf("%d of %d hosts not ready", len(t.notReady), t.total)
	if t.total == 1 && t.first != "" {
		msg = fmt.Errorf("%s is not ready: %s", t.notReady[0], t.first)
	}
	return &exitError{code: t.worst, err: msg}
}

func hostCheckRun(ctx context.Context, opts *HostOptions) error {
	f := opts.f
	out := newOutput(f.IO, f.Conn.Output, false)
	var tally hostTally
	err := f.forEachHost(ctx, out, func(ctx context.Context, s *session) error {
		r := hostcheck.Check(ctx, s.Endpoint.Name, s.WSMan)
		tally.add(r.Host, reportCode(r), r.Problems)
		return out.emit(r.Host, r)
	})
	if err != nil {
		return flushWith(out, renderHostTable, err)
	}
	return flushWith(out, renderHostTable, tally.err())
}

func hostPrepareRun(ctx context.Context, opts *HostOptions) error {
	f := opts.f
	out := newOutput(f.IO, f.Conn.Output, false)
	var tally hostTally
	err := f.forEachHost(ctx, out, func(ctx context.Context, s *session) error {
		p := hostcheck.Prepare(ctx, s.Endpoint.Name, s.WSMan, opts.Yes)
		final := p.Final()
		code := reportCode(final)
		if p.Err != nil {
			code = worst(code, max(ExitCode(p.Err), ExitJobFailed))
		}
		tally.add(p.Host, code, final.Problems)
		return out.emit(p.Host, p)
	})
	if err != nil {
		return flushWith(out, renderPrepare, err)
	}
	return flushWith(out, renderPrepare, tally.err())
}

// renderHostTable prints one line per host and its problems under it.
func renderHostTable(w io.Writer, recs []record) {
	tw := newTable(w)
	fmt.Fprintln(tw, "HOST\tREADY\tPROVIDER\tFEATURE\tENCRYPTION\tOS")
	var notes []string
	for _, rec := range recs {
		r, ok := rec.value.(*hostcheck.Report)
		if !ok {
			continue
		}
		fmt.Fprintf(tw, "%s\n", hostRow(r))
		for _, p := range r.Problems {
			notes = append(notes, r.Host+": "+p)
		}
	}
	tw.Flush()
	for _, n := range notes {
		fmt.Fprintf(w, "  %s\n", n)
	}
}

func hostRow(r *hostcheck.Report) string {
	provider := "?"
	if r.ProviderInstalled != nil {
		provider = map[bool]string{true: "installed", false: "missing"}[*r.ProviderInstalled]
	}
	feature, osText := "?", "?"
	if r.Feature != nil {
		feature = dash(r.Feature.InstallState)
	}
	if r.OS != nil {
		osText = strings.TrimSpace(r.OS.Caption + " " + r.OS.Version)
	}
	return strings.Join([]string{r.Host, yesNo(r.Ready), provider, feature, r.Encryption, osText}, "\t")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// renderPrepare says per host what prepare did or would do, then the
// final state as host check prints it.
func renderPrepare(w io.Writer, recs []record) {
	var finals []record
	for _, rec := range recs {
		p, ok := rec.value.(*hostcheck.PrepareReport)
		if !ok {
			continue
		}
		switch {
		case p.Action == "":
			if p.Before.Ready {
				fmt.Fprintf(w, "%s: ready, nothing to do\n", p.Host)
			} else {
				fmt.Fprintf(w, "%s: not ready, and installing %s would not help\n", p.Host, hostcheck.FeatureName)
			}
		case p.DryRun:
			fmt.Fprintf(w, "%s: would run (add --yes to do it): %s\n", p.Host, p.Action)
		case p.Install != nil:
			fmt.Fprintf(w, "%s: installed %s (exit code %s, restart needed: %s)\n", p.Host, hostcheck.FeatureName, p.Install.ExitCode, p.Install.RestartNeeded)
		default:
			fmt.Fprintf(w, "%s: installing %s failed\n", p.Host, hostcheck.FeatureName)
		}
		finals = append(finals, record{host: p.Host, value: p.Final()})
	}
	if len(finals) > 0 {
		fmt.Fprintln(w)
		renderHostTable(w, finals)
	}
}

package cli

import (
	"context"
	"math"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bitsremote/bitsremote/bitsprov"
)

// TransferOptions are the options of "transfer", Start-BitsTransfer's
// equivalent.
type TransferOptions struct {
	f           *Factory
	Sources     []string
	Dest        string
	Async       bool
	Priority    string
	Name        string
	Description string
	Type        string

	JobUser         string
	JobAuth         string
	JobPasswordFile string

	ProxyUsage  string
	ProxyList   []string
	ProxyBypass []string

	// RetryInterval and RetryTimeout are the job's MinimumRetryDelay and
	// NoProgressTimeout (Start-BitsTransfer -RetryInterval, -RetryTimeout).
	RetryInterval time.Duration
	RetryTimeout  time.Duration

	wait   waitFlags
	ledger ledgerFlags
}

// NewCmdTransfer builds "transfer SOURCE... DEST".
func NewCmdTransfer(f *Factory) *cobra.Command {
	opts := &TransferOptions{f: f}
	cmd := &cobra.Command{
		Use:   "transfer SOURCE... DEST",
		Short: "Transfer files and wait, like Start-BitsTransfer",
		Long: `The Start-BitsTransfer equivalent: create one job per host, add every file,
set priority, credentials and proxy, resume, wait with progress, and complete
the job so the files appear on the host.

Download (default): SOURCE are http(s) URLs or UNC paths; DEST is a path on
the host. With one source DEST is the file's path, unless it ends in \ or /,
which makes it a directory; with several sources DEST is a directory and each
file keeps the last segment of its URL.
Upload (--type upload): SOURCE is one path on the host and DEST the URL of a
BITS upload server (an upload job holds exactly one file).

As with the cmdlet the priority defaults to foreground, the display name to
"BITS Transfer", and the call is synchronous: --async returns after resume
with the JobId. Server credentials for the job (--job-user, password from
$BITSREMOTE_JOB_PASSWORD, --job-password-file or a prompt) are sent only over
https:// or an encrypted connection.

Every job is recorded in the ledger (see "bitsremote ledger") before it is
created and after each step. If a run is interrupted (Ctrl-C, a kill, a lost
network), run the same command again with --resume: jobs already created
are found again by the marker in their Description and not created twice,
and finished ones are left alone. After --async, the same command with
--resume (without --async) waits for the recorded jobs and completes them.
A recorded job the host no longer has was completed or cancelled by someone
else: it is recorded as gone (exit 1, as wait --run does) and not touched by
later runs.

On wait and transfer --timeout bounds the whole wait, not each request. Exit
codes: 0 transferred and completed; 1 the job failed or was cancelled, or
left the queue without us; 4 the timeout passed (the job is left); 2, 3, 5
as for every command.`,
		Example: `  bitsremote transfer https://files.example.com/a.iso 'C:\Data\a.iso' -H server1 -u admin
  bitsremote transfer https://f.example.com/a.msi https://f.example.com/b.msi 'C:\Packages\' --priority normal --inventory hosts.txt -u admin
  bitsremote transfer 'C:\Logs\today.zip' https://upload.example.com/bits/today.zip --type upload -H server1 -u admin
  bitsremote transfer https://f.example.com/a.iso 'C:\Data\a.iso' --async -H server1 -u admin -o json`,
		Args: minArgs(2, "at least one SOURCE and a DEST"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Sources, opts.Dest = args[:len(args)-1], args[len(args)-1]
			return transferRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&opts.Async, "async", false, "return after resume with the JobId (Start-BitsTransfer -Asynchronous)")
	fl.StringVar(&opts.Priority, "priority", "foreground", "foreground, high, normal or low")
	fl.StringVar(&opts.Name, "name", "BITS Transfer", "job display name")
	fl.StringVar(&opts.Description, "description", "", "job description (up to 974 characters: BITS takes 1024, bitsremote adds a marker)")
	fl.StringVar(&opts.Type, "type", "download", "download or upload")
	fl.StringVar(&opts.JobUser, "job-user", "", "user the job authenticates to the server with (-Credential)")
	fl.StringVar(&opts.JobAuth, "job-auth", "negotiate", "scheme for --job-user: basic, digest, ntlm, negotiate or passport (-Authentication)")
	fl.StringVar(&opts.JobPasswordFile, "job-password-file", "", "read the job's password from the first line of `FILE`")
	fl.StringVar(&opts.ProxyUsage, "proxy-usage", "", "systemdefault, noproxy, autodetect or override (-ProxyUsage)")
	fl.StringSliceVar(&opts.ProxyList, "proxy-list", nil, "proxies for override, host:port (-ProxyList)")
	fl.StringSliceVar(&opts.ProxyBypass, "proxy-bypass", nil, "hosts that skip the proxy (-ProxyBypass)")
	addRetryFlags(cmd, opts)
	opts.wait.add(cmd, "cancel")
	opts.ledger.add(cmd)
	return cmd
}

// addRetryFlags adds the job's retry settings, as Start-BitsTransfer names them.
func addRetryFlags(cmd *cobra.Command, opts *TransferOptions) {
	fl := cmd.Flags()
	fl.DurationVar(&opts.RetryInterval, "retry-interval", 0, "wait this long before retrying after a transient error (-RetryInterval; whole seconds, at least 5s; default: the host's, 10m)")
	fl.DurationVar(&opts.RetryTimeout, "retry-timeout", 0, "give up (Error) after this long without progress (-RetryTimeout; whole seconds; default: the host's, 14 days)")
}

// transferSpec is one job to create and follow.
type transferSpec struct {
	// Row names the CSV row in messages (0 for the command line).
	Row  int
	Opts bitsprov.CreateJobOptions
}

// transferSettings are what every job of a transfer shares.
type transferSettings struct {
	Type        bitsprov.JobType
	Priority    bitsprov.Priority
	Name        string
	Description string
	Credentials []bitsprov.Credential
	Proxy       *bitsprov.ProxySettings
	Async       bool
	Policy      bitsprov.Policy

	RetryInterval time.Duration
	RetryTimeout  time.Duration
}

// settings validates the flags shared by transfer and import-csv.
func (o *TransferOptions) settings() (*transferSettings, error) {
	f := o.f
	t, err := parseJobType(o.Type)
	if err != nil {
		return nil, err
	}
	pr, err := bitsprov.ParsePriority(o.Priority)
	if err != nil {
		return nil, usageErrorf("--priority: %w", err)
	}
	if err := checkText("--name", o.Name, maxName); err != nil {
		return nil, err
	}
	if strings.TrimSpace(o.Name) == "" {
		return nil, usageErrorf("--name must not be empty")
	}
	if err := checkText("--description", o.Description, maxDescription); err != nil {
		return nil, err
	}
	pol, err := o.wait.policy(f)
	if err != nil {
		return nil, err
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
		min  time.Duration
	}{{"--retry-interval", o.RetryInterval, 5 * time.Second}, {"--retry-timeout", o.RetryTimeout, time.Second}} {
		if d.v == 0 {
			continue
		}
		if d.v < d.min || d.v%time.Second != 0 || d.v > math.MaxUint32*time.Second {
			return nil, usageErrorf("%s %s: want whole seconds from %s", d.flag, d.v, d.min)
		}
	}
	st := &transferSettings{Type: t, Priority: pr, Name: o.Name, Description: o.Description, Async: o.Async, Policy: pol,
		RetryInterval: o.RetryInterval, RetryTimeout: o.RetryTimeout}
	if o.ProxyUsage != "" || len(o.ProxyList) > 0 || len(o.ProxyBypass) > 0 {
		if st.Proxy, err = proxySettings(o.ProxyUsage, o.ProxyList, o.ProxyBypass); err != nil {
			return nil, err
		}
	}
	if o.JobPasswordFile != "" && o.JobUser == "" {
		return nil, usageErrorf("--job-password-file needs --job-user")
	}
	if o.JobUser != "" {
		if err := f.checkSecretsProtected(); err != nil {
			return nil, err
		}
		cr, err := jobCredential(f, "server", o.JobAuth, o.JobUser, o.JobPasswordFile)
		if err != nil {
			return nil, err
		}
		st.Credentials = []bitsprov.Credential{cr}
	}
	return st, nil
}

// jobOptions builds one job's CreateJobOptions from its file pairs.
func (st *transferSettings) jobOptions(files []bitsprov.FileSpec) bitsprov.CreateJobOptions {
	pr := st.Priority
	jo := bitsprov.CreateJobOptions{
		DisplayName:          st.Name,
		Description:          st.Description,
		RemoteURL:            files[0].RemoteURL,
		LocalFile:            files[0].LocalFile,
		Type:                 st.Type,
		Priority:             &pr,
		ExtraFiles:           files[1:],
		Credentials:          st.Credentials,
		Proxy:                st.Proxy,
		MinimumRetryDelay:    st.RetryInterval,
		NoProgressTimeout:    st.RetryTimeout,
		CancelOnSetupFailure: true,
	}
	return jo
}

// transferFiles pairs sources with the destination as Start-BitsTransfer
// does: see the command's help.
func transferFiles(t bitsprov.JobType, sources []string, dest string) ([]bitsprov.FileSpec, error) {
	if t == bitsprov.TypeUpload {
		if len(sources) != 1 {
			return nil, usageErrorf("an upload job holds exactly one file; got %d sources", len(sources))
		}
		if err := checkUploadURL(dest); err != nil {
			return nil, err
		}
		return []bitsprov.FileSpec{{RemoteURL: dest, LocalFile: sources[0]}}, nil
	}
	if strings.HasPrefix(strings.ToLower(dest), "http://") || strings.HasPrefix(strings.ToLower(dest), "https://") {
		return nil, usageErrorf("DEST %q is a URL; for an upload use --type upload", dest)
	}
	dir := len(sources) > 1 || strings.HasSuffix(dest, `\`) || strings.HasSuffix(dest, "/")
	var files []bitsprov.FileSpec
	seen := map[string]string{}
	for _, src := range sources {
		if err := checkRemoteURL(src); err != nil {
			return nil, err
		}
		local := dest
		if dir {
			name, err := remoteBaseName(src)
			if err != nil {
				return nil, err
			}
			local = joinHostPath(dest, name)
		}
		key := strings.ToLower(local)
		if prev, ok := seen[key]; ok {
			return nil, usageErrorf("sources %q and %q would both be saved as %q", prev, src, local)
		}
		seen[key] = src
		files = append(files, bitsprov.FileSpec{RemoteURL: src, LocalFile: local})
	}
	return files, nil
}

func checkUploadURL(u string) error {
	l := strings.ToLower(u)
	if strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://") {
		return nil
	}
	return usageErrorf("upload DEST %q: want the http(s) URL of a BITS upload server", u)
}

// remoteBaseName is the file name a source keeps in a directory.
func remoteBaseName(src string) (string, error) {
	var p string
	if strings.HasPrefix(src, `\\`) {
		p = strings.ReplaceAll(src, `\`, "/")
	} else {
		u, err := url.Parse(src)
		if err != nil {
			return "", usageErrorf("source %q: %w", src, err)
		}
		p = u.Path
	}
	name := path.Base(p)
	if name == "" || name == "/" || name == "." {
		return "", usageErrorf("source %q has no file name to keep; give the full destination path", src)
	}
	return name, nil
}

// joinHostPath joins a directory and a file name with the separator the
// directory already uses (Windows paths on the host).
func joinHostPath(dir, name string) string {
	sep := `\`
	if strings.Contains(dir, "/") && !strings.Contains(dir, `\`) {
		sep = "/"
	}
	return strings.TrimRight(dir, `\/`) + sep + name
}

func transferRun(ctx context.Context, opts *TransferOptions) error {
	f := opts.f
	t, err := parseJobType(opts.Type)
	if err != nil {
		return err
	}
	files, err := transferFiles(t, opts.Sources, opts.Dest)
	if err != nil {
		return err
	}
	st, err := opts.settings()
	if err != nil {
		return err
	}
	spec := transferSpec{Opts: st.jobOptions(files)}
	out := newOutput(f.IO, f.Conn.Output, false)
	err = fleetTransfer(ctx, f, "transfer", &opts.ledger, st, []transferSpec{spec}, out)
	return flushWith(out, renderJobDetail, err)
}

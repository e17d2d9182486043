package cli

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf16"

	"github.com/spf13/cobra"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/wsman/transport"
)

// CreateOptions are the options of "create".
type CreateOptions struct {
	f           *Factory
	URL         string
	Local       string
	Name        string
	Description string
	Type        string
	Priority    string
	Suspended   bool
}

// createRecord is what "create" prints.
type createRecord struct {
	Host  string `json:"host"`
	JobID string `json:"jobId"`
	// State is "Suspended" with --suspended, else "Queued" (resumed).
	Suspended bool `json:"suspended"`
}

// NewCmdCreate builds "create".
func NewCmdCreate(f *Factory) *cobra.Command {
	opts := &CreateOptions{f: f}
	cmd := &cobra.Command{
		Use:   "create --url URL --local PATH",
		Short: "Create a job and print its JobId (bitsadmin /create + /addfile + /resume)",
		Long: `Create a BITS job on each host with one file and print its JobId.

The job is created suspended, configured (priority), then resumed unless
--suspended is given, so nothing transfers before it is set up. The job is
owned by NetworkService, as the BITS provider requires; LOCAL must be a path
that account can write. Use add-file to add more files before resume.`,
		Example: `  bitsremote create --url https://files.example.com/a.iso --local 'C:\Data\a.iso' -H server1 -u admin
  id=$(bitsremote create --url https://files.example.com/a.iso --local 'C:\Data\a.iso' --suspended -H server1 -u admin)`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return createRun(cmd.Context(), opts) },
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.URL, "url", "", "remote `URL` (download: source; upload: destination)")
	fl.StringVar(&opts.Local, "local", "", "local `PATH` on the host (download: destination; upload: source)")
	fl.StringVar(&opts.Name, "name", "bitsremote", "job display name")
	fl.StringVar(&opts.Description, "description", "", "job description (up to 974 characters: BITS takes 1024, bitsremote adds a marker)")
	fl.StringVar(&opts.Type, "type", "download", "job type: download or upload")
	fl.StringVar(&opts.Priority, "priority", "", "foreground, high, normal or low (default: the host's, normal)")
	fl.BoolVar(&opts.Suspended, "suspended", false, "leave the job suspended (resume it later)")
	return cmd
}

func createRun(ctx context.Context, opts *CreateOptions) error {
	jo, err := opts.jobOptions()
	if err != nil {
		return err
	}
	f := opts.f
	out := newOutput(f.IO, f.Conn.Output, false)
	err = f.forEachHost(ctx, out, func(ctx context.Context, s *session) error {
		id, err := s.Bits.CreateJob(ctx, jo)
		if err != nil {
			return err
		}
		return out.emit(s.Endpoint.Name, createRecord{Host: s.Endpoint.Name, JobID: id, Suspended: opts.Suspended})
	})
	return flushWith(out, renderLines(func(r record) string {
		c, ok := r.value.(createRecord)
		if !ok {
			return ""
		}
		if out.multiHost {
			return c.Host + " " + c.JobID
		}
		return c.JobID
	}), err)
}

func (opts *CreateOptions) jobOptions() (bitsprov.CreateJobOptions, error) {
	var jo bitsprov.CreateJobOptions
	if opts.URL == "" || opts.Local == "" {
		return jo, usageErrorf("create needs --url and --local")
	}
	t, err := parseJobType(opts.Type)
	if err != nil {
		return jo, err
	}
	if t == bitsprov.TypeDownload {
		if err := checkRemoteURL(opts.URL); err != nil {
			return jo, err
		}
	}
	if err := checkText("--name", opts.Name, maxName); err != nil {
		return jo, err
	}
	if strings.TrimSpace(opts.Name) == "" {
		return jo, usageErrorf("--name must not be empty")
	}
	if err := checkText("--description", opts.Description, maxDescription); err != nil {
		return jo, err
	}
	jo = bitsprov.CreateJobOptions{
		DisplayName: opts.Name,
		Description: opts.Description,
		RemoteURL:   opts.URL,
		LocalFile:   opts.Local,
		Type:        t,
		Suspended:   opts.Suspended,
	}
	if opts.Priority != "" {
		pr, err := bitsprov.ParsePriority(opts.Priority)
		if err != nil {
			return jo, usageErrorf("--priority: %w", err)
		}
		jo.Priority = &pr
	}
	return jo, nil
}

// parseJobType accepts download or upload; the provider has no
// upload-reply jobs.
func parseJobType(s string) (bitsprov.JobType, error) {
	t, err := bitsprov.ParseJobType(s)
	if err != nil {
		return 0, usageErrorf("--type: %w", err)
	}
	if t != bitsprov.TypeDownload && t != bitsprov.TypeUpload {
		return 0, usageErrorf("--type %s: the BITS provider creates only download and upload jobs", s)
	}
	return t, nil
}

// Lengths BITS allows, in UTF-16 code units (Windows characters).
const (
	maxName = 256
	// maxDescription leaves room for the marker bitsprov appends to
	// every description (" [bitsremote:<uuid>]", 50 characters) to find
	// the job again after a lost reply: BITS takes 1,024 in all.
	maxDescription = 1024 - len(" ["+bitsprov.MarkerPrefix+"]") - 36
)

// checkText bounds a free-text flag and refuses control characters, which
// the host would mangle. Length is counted as Windows counts it, in
// UTF-16 code units: a character beyond the BMP (an emoji) counts twice.
func checkText(flag, s string, max int) error {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	if n > max {
		if flag == "--description" {
			return usageErrorf("%s is %d characters long; bitsremote allows %d (BITS takes 1024, and bitsremote adds a %d-character marker to find the job again)", flag, n, max, 1024-max)
		}
		return usageErrorf("%s is %d characters long; BITS allows %d", flag, n, max)
	}
	for _, r := range s {
		if r < 0x20 && r != '\t' {
			return usageErrorf("%s contains a control character (%U)", flag, r)
		}
	}
	return nil
}

// CredentialsOptions are the options of "set-credentials".
type CredentialsOptions struct {
	f               *Factory
	JobID           string
	Target          string
	Scheme          string
	JobUser         string
	JobPasswordFile string
}

// NewCmdSetCredentials builds "set-credentials JOBID".
func NewCmdSetCredentials(f *Factory) *cobra.Command {
	opts := &CredentialsOptions{f: f}
	cmd := &cobra.Command{
		Use:   "set-credentials JOBID --job-user USER",
		Short: "Give a job the credentials for its server or proxy (bitsadmin /setcredentials)",
		Long: `Set the user name and password BITS on the host uses to authenticate to the
remote server (--target server) or to a proxy (--target proxy).

The job's password comes from $BITSREMOTE_JOB_PASSWORD, --job-password-file,
or a no-echo prompt on a terminal; never from a flag value. It travels inside
the SOAP body, so bitsremote refuses to send it unless the connection is
https:// or NTLM/Kerberos with message encryption (not --encryption never).`,
		Example: `  BITSREMOTE_JOB_PASSWORD=... bitsremote set-credentials {6F6D6B3E-1B8A-4F3C-9C2E-3A3D1C2B4A5F} --scheme ntlm --job-user 'CORP\svc-dl' -H server1 -u admin`,
		Args:    exactArgs("JOBID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.JobID = args[0]
			return credentialsRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Target, "target", "server", "server or proxy")
	fl.StringVar(&opts.Scheme, "scheme", "negotiate", "basic, digest, ntlm, negotiate or passport")
	fl.StringVar(&opts.JobUser, "job-user", "", "user name the job authenticates with")
	fl.StringVar(&opts.JobPasswordFile, "job-password-file", "", "read the job's password from the first line of `FILE`")
	return cmd
}

// jobCredential parses target and scheme and reads the job password.
func jobCredential(f *Factory, target, scheme, user, pwFile string) (bitsprov.Credential, error) {
	var cr bitsprov.Credential
	t, err := bitsprov.ParseCredentialTarget(target)
	if err != nil {
		return cr, usageErrorf("--target: %w", err)
	}
	sc, err := bitsprov.ParseCredentialScheme(scheme)
	if err != nil {
		return cr, usageErrorf("--scheme: %w", err)
	}
	if user == "" {
		return cr, usageErrorf("--job-user is required")
	}
	pw, err := readSecret(f, pwFile, EnvJobPassword, "--job-password-file", fmt.Sprintf("Job password for %s: ", user))
	if err != nil {
		return cr, err
	}
	return bitsprov.Credential{Target: t, Scheme: sc, UserName: user, Password: pw}, nil
}

// checkSecretsProtected refuses to send a job password to a host over a
// channel that is neither TLS nor sealed.
func (f *Factory) checkSecretsProtected() error {
	eps, err := f.endpoints()
	if err != nil {
		return err
	}
	cfg, err := f.baseConfig()
	if err != nil {
		return err
	}
	for _, ep := range eps {
		if ep.https() {
			continue
		}
		// An inventory may set the host's own transport and encryption.
		auth, enc := ep.settings(cfg)
		sealed := (auth == transport.AuthNTLM || auth == transport.AuthKerberos) && enc != transport.EncryptionNever
		if !sealed {
			return usageErrorf("%s: refusing to send a job password over http:// without message encryption (use --https, or --auth ntlm or kerberos without --encryption never)", ep.Name)
		}
	}
	return nil
}

func credentialsRun(ctx context.Context, opts *CredentialsOptions) error {
	f := opts.f
	if err := checkJobID(opts.JobID); err != nil {
		return err
	}
	if err := f.checkSecretsProtected(); err != nil {
		return err
	}
	cr, err := jobCredential(f, opts.Target, opts.Scheme, opts.JobUser, opts.JobPasswordFile)
	if err != nil {
		return err
	}
	return jobAction(ctx, f, opts.JobID, "set credentials on", func(ctx context.Context, s *session, id string) (actionRecord, error) {
		err := s.Bits.SetCredentials(ctx, id, cr.Target, cr.Scheme, cr.UserName, cr.Password)
		return actionRecord{Detail: fmt.Sprintf("%s %s as %s", cr.Target, cr.Scheme, cr.UserName)}, err
	})
}

// ProxyOptions are the options of "set-proxy".
type ProxyOptions struct {
	f      *Factory
	JobID  string
	Usage  string
	List   []string
	Bypass []string
}

// NewCmdSetProxy builds "set-proxy JOBID".
func NewCmdSetProxy(f *Factory) *cobra.Command {
	opts := &ProxyOptions{f: f}
	cmd := &cobra.Command{
		Use:   "set-proxy JOBID --usage USAGE",
		Short: "Choose how a job finds its proxy (bitsadmin /setproxysettings)",
		Long: `Set the job's proxy usage: preconfig (the host's settings, PowerShell's
SystemDefault), noproxy, autodetect, or override with --list (and optionally
--bypass). Lists are only allowed with override.`,
		Example: `  bitsremote set-proxy {6F6D6B3E-1B8A-4F3C-9C2E-3A3D1C2B4A5F} --usage override --list proxy1:8080 --bypass '<local>' -H server1 -u admin
  bitsremote set-proxy {6F6D6B3E-1B8A-4F3C-9C2E-3A3D1C2B4A5F} --usage noproxy -H server1 -u admin`,
		Args: exactArgs("JOBID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.JobID = args[0]
			ps, err := proxySettings(opts.Usage, opts.List, opts.Bypass)
			if err != nil {
				return err
			}
			return jobAction(cmd.Context(), f, opts.JobID, "set proxy on", func(ctx context.Context, s *session, id string) (actionRecord, error) {
				return actionRecord{Detail: ps.Usage.String()}, s.Bits.SetProxySettings(ctx, id, ps.Usage, ps.List, ps.Bypass)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Usage, "usage", "", "preconfig, noproxy, override or autodetect")
	fl.StringSliceVar(&opts.List, "list", nil, "proxies for override, host:port (comma-separated or repeated)")
	fl.StringSliceVar(&opts.Bypass, "bypass", nil, "hosts that skip the proxy, or <local> (comma-separated or repeated)")
	return cmd
}

// proxySettings parses --usage, --list and --bypass. With lists but no
// usage, override is meant.
func proxySettings(usage string, list, bypass []string) (*bitsprov.ProxySettings, error) {
	list, bypass = splitList(list), splitList(bypass)
	if usage == "" {
		if len(list) == 0 && len(bypass) == 0 {
			return nil, usageErrorf("--usage is required (preconfig, noproxy, override or autodetect)")
		}
		usage = "override"
	}
	u, err := bitsprov.ParseProxyUsage(usage)
	if err != nil {
		return nil, usageErrorf("--usage: %w", err)
	}
	if u != bitsprov.ProxyOverride && (len(list) > 0 || len(bypass) > 0) {
		return nil, usageErrorf("--list and --bypass need --usage override (got %s)", u)
	}
	if u == bitsprov.ProxyOverride && len(list) == 0 {
		return nil, usageErrorf("--usage override needs --list")
	}
	return &bitsprov.ProxySettings{Usage: u, List: list, Bypass: bypass}, nil
}

// splitList splits entries on white space too, since BITS lists are
// space-delimited and people paste them that way.
func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		out = append(out, strings.Fields(s)...)
	}
	return out
}

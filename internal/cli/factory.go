package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/internal/fleet"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
)

// Environment variables read by the command line.
const (
	// EnvPassword holds the password for --user.
	EnvPassword = "BITSREMOTE_PASSWORD"
	// EnvJobPassword holds the password set-credentials and transfer send
	// to the job (the BITS server or proxy credentials, not ours).
	EnvJobPassword = "BITSREMOTE_JOB_PASSWORD"
)

// Factory holds what commands need from the outside world. Tests replace
// any part of it; NewFactory wires the real ones.
type Factory struct {
	IO *IOStreams
	// Clock is the time source of waits and elapsed times.
	Clock bitsprov.Clock
	// Getenv reads the environment.
	Getenv func(string) string
	// NewTransport builds the transport for one host from its settings.
	NewTransport func(transport.Config) (transport.Transport, error)
	// Procs, if set, is called with the number of hosts a command is
	// about to work on and its --concurrency before it connects, and
	// returns the GOMAXPROCS it leaves (LimitProcs in the bitsremote
	// command).
	Procs func(hosts, concurrency int) int

	// Conn holds the connection flags, filled by cobra.
	Conn ConnOptions

	// logger is built from --debug on first use.
	logger  *slog.Logger
	logOnce sync.Once
	// pwMap is --password-map, read by passwords.
	pwMap *passwordMap
	// board, while a fleet progress board is on the terminal, takes the
	// messages that would otherwise be drawn over (see warnf).
	board *fleet.Board
}

// NewFactory returns a Factory on the process's streams and environment.
func NewFactory() *Factory {
	return &Factory{
		IO:           System(),
		Clock:        realClock{},
		Getenv:       os.Getenv,
		NewTransport: transport.New,
	}
}

// ConnOptions are the connection flags every command accepts.
type ConnOptions struct {
	Hosts              []string
	Inventory          string
	Limit              string
	Port               int
	HTTPS              bool
	Auth               string
	User               string
	PasswordFile       string
	PasswordMap        string
	Encryption         string
	CAFile             string
	CertFile           string
	KeyFile            string
	InsecureSkipVerify bool
	Timeout            time.Duration
	HostTimeout        time.Duration
	Retries            int
	Concurrency        int
	Output             string
	Debug              bool
}

// Defaults of the connection flags.
const (
	defaultTimeout     = 60 * time.Second
	defaultConcurrency = fleet.DefaultConcurrency
)

func (f *Factory) addConnFlags(cmd *cobra.Command) {
	fl := cmd.PersistentFlags()
	c := &f.Conn
	fl.StringArrayVarP(&c.Hosts, "host", "H", nil, "`host` to manage: name, name:port or URL (repeatable)")
	fl.StringVarP(&c.Inventory, "inventory", "i", "", "read hosts from `FILE`: one host[:port] or URL a line (# comments), or an Ansible INI or YAML inventory (ansible_host, ansible_port, ansible_user, ansible_winrm_transport, _scheme, _message_encryption)")
	fl.StringVar(&c.Limit, "limit", "", "with --inventory, only these hosts: Ansible `PATTERN`s (group, host, glob, ~regex; ':' or ',' between; '!' excludes, '&' intersects)")
	fl.IntVar(&c.Port, "port", 0, "WinRM port when a host names none (default 5985, or 5986 with --https)")
	fl.BoolVar(&c.HTTPS, "https", false, "use https:// (WinRM HTTPS listener)")
	fl.StringVar(&c.Auth, "auth", "ntlm", "authentication: basic, ntlm, kerberos or certificate")
	fl.StringVarP(&c.User, "user", "u", "", "user name: user, DOMAIN\\user or user@realm")
	fl.StringVar(&c.PasswordFile, "password-file", "", "read the password from the first line of `FILE` (else $"+EnvPassword+", else a prompt on a terminal)")
	fl.StringVar(&c.PasswordMap, "password-map", "", "per-host passwords (LAPS): `FILE` of 'NAME PASSWORD' lines, NAME a host as given to -H or in the inventory, with or without :port, or * for the rest; hosts it does not cover use the usual password; must not be readable by group or others")
	fl.StringVar(&c.Encryption, "encryption", "auto", "message encryption: auto (seal over http, not over https), always or never")
	fl.StringVar(&c.CAFile, "ca-file", "", "trust the CAs in this PEM `FILE` instead of the system pool")
	fl.StringVar(&c.CertFile, "cert-file", "", "client certificate PEM `FILE` (--auth certificate)")
	fl.StringVar(&c.KeyFile, "key-file", "", "client key PEM `FILE` (--auth certificate)")
	fl.BoolVar(&c.InsecureSkipVerify, "insecure-skip-verify", false, "do not check the host's TLS certificate (dangerous; warns)")
	fl.DurationVar(&c.Timeout, "timeout", defaultTimeout, "time allowed to connect and for each reply; a call that keeps timing out gives up after --retries more attempts, about (retries+1) x timeout in all")
	fl.DurationVar(&c.HostTimeout, "host-timeout", 0, "time allowed for all of one host's work, so one slow host cannot hold up a fleet (0: no limit)")
	fl.IntVar(&c.Retries, "retries", wsman.DefaultRetry.Attempts-1, "retries of a call that failed on a passing condition (refused connection, 503, timeout); only calls safe to repeat are repeated; 0: none")
	fl.IntVar(&c.Concurrency, "concurrency", defaultConcurrency, "hosts handled at once")
	fl.StringVarP(&c.Output, "output", "o", "table", "output format: table, json or jsonl")
	fl.BoolVar(&c.Debug, "debug", false, "diagnostics and a wire dump (secrets removed) on stderr")
}

// checkOutput validates -o before anything runs.
func (c *ConnOptions) checkOutput() error {
	switch c.Output {
	case "table", "json", "jsonl":
		return nil
	}
	return usageErrorf("unknown output format %q (want table, json or jsonl)", c.Output)
}

// endpoints resolves -H and --inventory (with --limit) into endpoints,
// in order, without duplicates.
func (f *Factory) endpoints() ([]Endpoint, error) {
	c := &f.Conn
	if c.Port < 0 || c.Port > 65535 {
		return nil, usageErrorf("--port %d is not a port number", c.Port)
	}
	hosts, err := f.fleetHosts()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var eps []Endpoint
	for _, h := range hosts {
		name, url := h.Endpoint(c.Port, c.HTTPS)
		if seen[url] {
			continue
		}
		seen[url] = true
		eps = append(eps, Endpoint{Name: name, URL: url, host: h})
	}
	return eps, nil
}

// session is what a command gets to talk to one host.
type session struct {
	Endpoint Endpoint
	WSMan    *wsman.Client
	Bits     *bitsprov.Client
}

// baseConfig validates the connection flags and returns the transport
// settings shared by every host, without the password.
func (f *Factory) baseConfig() (transport.Config, error) {
	c := &f.Conn
	var cfg transport.Config
	auth, err := transport.ParseAuth(c.Auth)
	if err != nil || auth == transport.AuthNone {
		return cfg, usageErrorf("--auth %q: want basic, ntlm, kerberos or certificate", c.Auth)
	}
	enc, err := transport.ParseEncryption(c.Encryption)
	if err != nil {
		return cfg, usageErrorf("--encryption: %w", err)
	}
	if c.Timeout <= 0 {
		return cfg, usageErrorf("--timeout must be positive, got %s", c.Timeout)
	}
	if c.Concurrency < 1 {
		return cfg, usageErrorf("--concurrency must be at least 1, got %d", c.Concurrency)
	}
	if c.HostTimeout < 0 {
		return cfg, usageErrorf("--host-timeout must not be negative, got %s", c.HostTimeout)
	}
	if c.Retries < 0 || c.Retries > 100 {
		return cfg, usageErrorf("--retries must be from 0 to 100, got %d", c.Retries)
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return cfg, usageErrorf("--cert-file and --key-file go together")
	}
	switch auth {
	case transport.AuthCertificate:
		if c.CertFile == "" {
			return cfg, usageErrorf("--auth certificate needs --cert-file and --key-file")
		}
	case transport.AuthBasic, transport.AuthNTLM:
		if c.User == "" {
			return cfg, usageErrorf("--auth %s needs --user", auth)
		}
	}
	for _, p := range []struct{ flag, path string }{{"--ca-file", c.CAFile}, {"--cert-file", c.CertFile}, {"--key-file", c.KeyFile}} {
		if p.path == "" {
			continue
		}
		if _, err := os.Stat(p.path); err != nil {
			return cfg, usageErrorf("%s: %w", p.flag, err)
		}
	}
	cfg = transport.Config{
		Auth:               auth,
		User:               c.User,
		Encryption:         enc,
		CAFile:             c.CAFile,
		CertFile:           c.CertFile,
		KeyFile:            c.KeyFile,
		InsecureSkipVerify: c.InsecureSkipVerify,
		DialTimeout:        c.Timeout,
		// --timeout is the whole wait for a reply; the host is asked to
		// answer a little sooner (operationTimeout), with a fault of its
		// own, so that a slow provider is reported as such.
		ResponseTimeout: c.Timeout,
	}
	return cfg, nil
}

// operationTimeout is the wsman:OperationTimeout sent with --timeout d:
// d less a margin (a fifth, at most 5 s) for the reply to travel, so the
// host's w:TimedOut arrives before our own deadline.
func operationTimeout(d time.Duration) time.Duration {
	return d - min(d/5, 5*time.Second)
}

// checkHTTPSOnly refuses certificate authentication to a host reached
// over http:// (WinRM accepts client certificates only over HTTPS),
// before anything is sent. It looks at each host as it will be reached
// (--https, an https:// host, an inventory's ansible_winrm_scheme or a
// ledger's record) and its own auth (ansible_winrm_transport), and names
// the hosts that would fail.
func checkHTTPSOnly(cfg transport.Config, eps []Endpoint) error {
	var cert []string
	for _, ep := range eps {
		if auth, _ := ep.settings(cfg); auth == transport.AuthCertificate && !ep.https() {
			cert = append(cert, ep.Name)
		}
	}
	if len(cert) > 0 {
		return usageErrorf("certificate authentication needs HTTPS (WinRM accepts client certificates only over HTTPS), and %s would be reached over http: use --https or https:// hosts", strings.Join(cert, ", "))
	}
	return nil
}

// password finds the password for --user: --password-file, then
// $BITSREMOTE_PASSWORD, then a no-echo prompt when stdin is a terminal.
func (f *Factory) password(auth transport.Auth) (string, error) {
	c := &f.Conn
	switch auth {
	case transport.AuthCertificate:
		return "", nil
	case transport.AuthKerberos:
		// A Kerberos ticket cache may be enough; use a password only
		// when one is given.
		if c.PasswordFile == "" && f.Getenv(EnvPassword) == "" {
			return "", nil
		}
	}
	return readSecret(f, c.PasswordFile, EnvPassword, "--password-file",
		fmt.Sprintf("Password for %s: ", c.User))
}

// passwords finds the passwords for eps: each host's own from
// --password-map, and the usual one (password) in cfg for the hosts the
// map does not cover, asked for only when there is such a host. Hosts
// that authenticate with a certificate need none.
func (f *Factory) passwords(cfg *transport.Config, eps []Endpoint) error {
	if f.Conn.PasswordMap == "" {
		var err error
		cfg.Password, err = f.password(cfg.Auth)
		return err
	}
	m, err := loadPasswordMap(f.Conn.PasswordMap)
	if err != nil {
		return err
	}
	f.pwMap = m
	need := false
	for _, ep := range eps {
		if auth, _ := ep.settings(*cfg); auth == transport.AuthCertificate {
			continue
		}
		h := ep.fleetHost()
		_, url := h.Endpoint(f.Conn.Port, f.Conn.HTTPS)
		if e, ok := m.lookup(h, url); ok {
			f.log().Debug("password", "host", ep.Name, "from", fmt.Sprintf("%s line %d", passwordMapFlag, e.line))
			continue
		}
		f.log().Debug("password", "host", ep.Name, "from", "the usual password (not in "+passwordMapFlag+")")
		need = true
	}
	if need {
		cfg.Password, err = f.password(cfg.Auth)
	}
	return err
}

// hostPassword is the fleet.Connector's Password: a host's own from
// --password-map.
func (f *Factory) hostPassword(h fleet.Host) (string, bool) {
	_, url := h.Endpoint(f.Conn.Port, f.Conn.HTTPS)
	e, ok := f.pwMap.lookup(h, url)
	return e.password, ok
}

// readSecret reads a secret from a file, then an environment variable,
// then a terminal prompt. The secret never appears in an error.
func readSecret(f *Factory, file, env, fileFlag, prompt string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", usageErrorf("%s: %w", fileFlag, err)
		}
		s := string(b)
		if i := strings.IndexAny(s, "\r\n"); i >= 0 {
			s = s[:i]
		}
		if s == "" {
			return "", usageErrorf("%s: %s: the first line is empty", fileFlag, file)
		}
		return s, nil
	}
	if v := f.Getenv(env); v != "" {
		return v, nil
	}
	if f.IO.StdinTTY && f.IO.ReadSecret != nil {
		s, err := f.IO.ReadSecret(prompt)
		if err != nil {
			return "", &UsageError{Err: err}
		}
		if s == "" {
			return "", usageErrorf("empty password")
		}
		return s, nil
	}
	return "", usageErrorf("no password: set %s, or use %s FILE, or run on a terminal to be prompted", env, fileFlag)
}

// forEachHost connects to every host and runs fn on each, at most
// --concurrency at a time. A host's failure is reported on stderr (and, in
// fleet JSON output, as a record) and does not stop the others; the worst
// exit code wins.
func (f *Factory) forEachHost(ctx context.Context, out *output, fn func(ctx context.Context, s *session) error) error {
	eps, cfg, err := f.prepare()
	if err != nil {
		return err
	}
	return f.fanOut(ctx, out, eps, cfg, fn)
}

// prepare checks the connection flags, resolves the hosts and finds the
// password: everything that can fail before a host is contacted.
func (f *Factory) prepare() ([]Endpoint, transport.Config, error) {
	eps, err := f.endpoints()
	if err != nil {
		return nil, transport.Config{}, err
	}
	cfg, err := f.baseConfig()
	if err != nil {
		return nil, cfg, err
	}
	if err := checkHTTPSOnly(cfg, eps); err != nil {
		return nil, cfg, err
	}
	if err := f.passwords(&cfg, eps); err != nil {
		return nil, cfg, err
	}
	if f.Conn.InsecureSkipVerify {
		f.IO.Warnf("warning: --insecure-skip-verify: the hosts' TLS certificates are not checked; anyone on the path can read and change the traffic")
	}
	return eps, cfg, nil
}

// fanOut runs fn on every endpoint, at most --concurrency at a time,
// each host on one kept-alive connection.
func (f *Factory) fanOut(ctx context.Context, out *output, eps []Endpoint, cfg transport.Config, fn func(ctx context.Context, s *session) error) error {
	out.multiHost = len(eps) > 1
	pool := f.pool(eps, cfg)
	defer pool.Close()
	var mu sync.Mutex
	var firstErr error
	_, sum := pool.Run(ctx, f.fleetOptions(out, len(eps), &firstErr, &mu), func(ctx context.Context, c *fleet.Conn) error {
		f.log().Debug("host start", "host", c.Name, "url", c.URL, "auth", cfg.Auth.String(), "encryption", cfg.Encryption.String())
		return explain(c.WSMan, fn(ctx, sessionOf(c)))
	})
	return f.fleetResult(len(eps), firstErr, sum)
}

// log returns the diagnostics logger: stderr with --debug, else
// discarded. It is built once, after the flags are parsed.
func (f *Factory) log() *slog.Logger {
	f.logOnce.Do(func() {
		if !f.Conn.Debug {
			f.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			return
		}
		f.logger = slog.New(slog.NewTextHandler(lockedWriter{f.IO, f.IO.ErrOut}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	return f.logger
}

// identifyConfig is the transport for an anonymous Identify: TLS settings
// and timeouts from the flags, no credentials, so no password is asked.
func (f *Factory) identifyConfig() (transport.Config, error) {
	c := &f.Conn
	if c.Timeout <= 0 {
		return transport.Config{}, usageErrorf("--timeout must be positive, got %s", c.Timeout)
	}
	if c.Concurrency < 1 {
		return transport.Config{}, usageErrorf("--concurrency must be at least 1, got %d", c.Concurrency)
	}
	if c.InsecureSkipVerify {
		f.IO.Warnf("warning: --insecure-skip-verify: the hosts' TLS certificates are not checked; anyone on the path can read and change the traffic")
	}
	return transport.Config{
		Auth:               transport.AuthNone,
		Encryption:         transport.EncryptionNever,
		CAFile:             c.CAFile,
		InsecureSkipVerify: c.InsecureSkipVerify,
		DialTimeout:        c.Timeout,
		ResponseTimeout:    c.Timeout,
	}, nil
}

// realClock is the wall clock.
type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

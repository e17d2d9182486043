package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/bitsremote/bitsremote/bitsprov/bitssim"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// SimOptions are the options of "sim".
type SimOptions struct {
	f          *Factory
	Listen     string
	Auth       string
	Encryption string
	User       string
	Hosts      int
	TLS        bool
	FilesDir   string
	UploadDir  string
	TimeScale  float64
	// StateDir keeps each host's job queue across restarts of sim.
	StateDir string
	// NoFeature serves hosts without the BITS-Compact-Server feature
	// (for trying "host check" and "host prepare").
	NoFeature bool
	// Keytab holds the hosts' Kerberos service keys (--auth kerberos).
	Keytab string
	// PasswordPerHost gives each host's administrator its own password,
	// as LAPS does (for trying --password-map).
	PasswordPerHost bool
	// ready, when set, receives the hosts once they serve (tests).
	ready func([]simHostRecord)
}

// simHostRecord describes one simulated host; sim prints one per host.
type simHostRecord struct {
	Host     string `json:"host"`
	URL      string `json:"url"`
	Machine  string `json:"machine"`
	Auth     string `json:"auth"`
	User     string `json:"user"`
	Password string `json:"password,omitempty"`
	CAFile   string `json:"caFile,omitempty"`
	FilesURL string `json:"filesUrl,omitempty"`
	// UploadURL is where upload jobs can send files.
	UploadURL string `json:"uploadUrl,omitempty"`
}

// NewCmdSim builds "sim".
func NewCmdSim(f *Factory) *cobra.Command {
	opts := &SimOptions{f: f}
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Serve simulated Windows hosts with the BITS provider until interrupted",
		Long: `Run simulated Windows hosts in the foreground: WinRM endpoints serving the
BITS provider (wmi/root/microsoft/bits/BitsClientJob) with its real state
machine and real transfers, for trying bitsremote, for scripts and for tests.
It prints how to reach each host and serves until SIGINT or SIGTERM.

--hosts N serves N hosts on consecutive loopback addresses (127.0.0.1,
127.0.0.2, ...) with the same port; Linux routes all of 127.0.0.0/8 to
loopback, macOS needs "sudo ifconfig lo0 alias 127.0.0.2" per extra address.

The password is $BITSREMOTE_PASSWORD, or generated and printed once. With
--password-per-host every host has its own, as under LAPS: $BITSREMOTE_PASSWORD
followed by "-" and the host's machine name (secret-SIM01, secret-SIM02, ...),
or without it one generated per host; each host's is printed, for trying
--password-map. Jobs
write their files to the local paths they are given, as the account running
sim. --files serves a directory for jobs to download from.

Jobs live in memory unless --state-dir DIR is given: then each host keeps
its job queue there (DIR/SIM01, ...), and sim started again on DIR has the
same jobs, their transfers resuming where they stopped, as the BITS service
keeps its queue across service and machine restarts. The file and upload
servers (on the first host's address when it is a loopback one) come back
on the same ports, so the jobs' URLs still work.

Here --auth, --encryption and --user describe what the hosts accept, not how
to connect. With -o json or jsonl one object per host is printed, then
nothing more until the hosts stop.`,
		Example: `  bitsremote sim
  BITSREMOTE_PASSWORD=secret bitsremote sim --listen 127.0.0.1:5985 --hosts 3 --files ./testdata
  bitsremote sim --listen 127.0.0.1:0 --auth basic --encryption optional -o jsonl
  bitsremote sim --state-dir ~/.cache/bitsremote-sim`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.TLS = f.Conn.HTTPS
			return simRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Listen, "listen", "127.0.0.1:5985", "address of the first host (port 0: any free port)")
	fl.StringVar(&opts.Auth, "auth", "ntlm", "methods the hosts accept, comma-separated: ntlm, basic, kerberos (needs --keytab)")
	fl.StringVar(&opts.Keytab, "keytab", "", "the hosts' Kerberos service keys (HTTP/<name>, from kadmin's ktadd or ktpass), for --auth kerberos")
	fl.StringVar(&opts.Encryption, "encryption", "required", "required (as a default Windows host: sealed NTLM over http) or optional")
	fl.StringVarP(&opts.User, "user", "u", "admin", "the hosts' administrator account")
	fl.IntVar(&opts.Hosts, "hosts", 1, "number of hosts, one per loopback address")
	fl.StringVar(&opts.FilesDir, "files", "", "serve this `DIR` over HTTP for download jobs")
	fl.StringVar(&opts.UploadDir, "upload-dir", "", "receive BITS uploads into this `DIR`")
	fl.StringVar(&opts.StateDir, "state-dir", "", "keep each host's job queue in `DIR` (DIR/SIM01, ...), so that sim started again has the same jobs, as BITS keeps its queue across restarts")
	fl.BoolVar(&opts.NoFeature, "without-bits-feature", false, "hosts without the BITS-Compact-Server feature: the BITS provider is missing until 'bitsremote host prepare --yes' installs it")
	fl.BoolVar(&opts.PasswordPerHost, "password-per-host", false, "give each host its own password, as LAPS does ($"+EnvPassword+"-SIM01, ... or generated), and print each")
	fl.Float64Var(&opts.TimeScale, "time-scale", 1, "speed of the hosts' BITS timers (0.01: a 600 s retry delay takes 6 s)")
	return cmd
}

// simAddrs returns the listen addresses of n hosts: the first address and
// the next n-1 IPv4 addresses with the same port.
func simAddrs(listen string, n int) ([]string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, usageErrorf("--listen %q: want host:port: %w", listen, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return nil, usageErrorf("--listen %q: bad port", listen)
	}
	if n < 1 || n > maxSimHosts {
		return nil, usageErrorf("--hosts %d: want 1 to %d", n, maxSimHosts)
	}
	if n == 1 {
		return []string{listen}, nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Is4() || !ip.IsLoopback() {
		return nil, usageErrorf("--hosts %d needs --listen on a 127.x.y.z address, got %q", n, host)
	}
	addrs := make([]string, 0, n)
	for i := 0; i < n; i++ {
		if !ip.IsLoopback() {
			return nil, usageErrorf("--hosts %d: runs past the loopback range", n)
		}
		addrs = append(addrs, net.JoinHostPort(ip.String(), port))
		ip = ip.Next()
	}
	return addrs, nil
}

// loopbackHost returns the host part of addr when it is a loopback IP
// literal, else "".
func loopbackHost(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
		return ""
	}
	return host
}

func (o *SimOptions) serverConfig(password string) (wsmantest.Config, error) {
	var cfg wsmantest.Config
	for _, a := range strings.Split(strings.ToLower(o.Auth), ",") {
		switch strings.TrimSpace(a) {
		case "ntlm", "negotiate":
			cfg.Auth |= wsmantest.AuthNTLM
		case "basic":
			cfg.Auth |= wsmantest.AuthBasic
		case "kerberos":
			cfg.Auth |= wsmantest.AuthKerberos
		default:
			return cfg, usageErrorf("--auth %q: want ntlm, basic, kerberos, or several of them comma-separated", o.Auth)
		}
	}
	if cfg.Auth&wsmantest.AuthKerberos != 0 {
		if o.Keytab == "" {
			return cfg, usageErrorf("--auth kerberos needs --keytab FILE with the hosts' service keys")
		}
		if _, err := os.Stat(o.Keytab); err != nil {
			return cfg, usageErrorf("--keytab: %w", err)
		}
		cfg.KerberosKeytab = o.Keytab
	} else if o.Keytab != "" {
		return cfg, usageErrorf("--keytab is for --auth kerberos")
	}
	switch strings.ToLower(o.Encryption) {
	case "required", "always":
		cfg.RequireEncryption = true
	case "optional", "never", "auto":
	default:
		return cfg, usageErrorf("--encryption %q: want required or optional", o.Encryption)
	}
	if o.User == "" {
		return cfg, usageErrorf("--user must not be empty")
	}
	if o.TimeScale <= 0 {
		return cfg, usageErrorf("--time-scale must be positive")
	}
	cfg.Users = map[string]string{o.User: password}
	return cfg, nil
}

// maxSimHosts bounds --hosts: enough for fleet benchmarks (127.0.0.1 to
// 127.0.16.0), few enough for one process's file descriptors.
const maxSimHosts = 4096

func simRun(ctx context.Context, opts *SimOptions) error {
	f := opts.f
	addrs, err := simAddrs(opts.Listen, opts.Hosts)
	if err != nil {
		return err
	}
	if len(addrs) > 100 {
		// Each host is a listener plus its clients' connections.
		raiseOpenFiles()
	}
	password, generated := f.Getenv(EnvPassword), false
	if password == "" {
		password, generated = randomSecret(12), true
	}
	base, err := opts.serverConfig(password)
	if err != nil {
		return err
	}
	for _, d := range []struct{ flag, dir string }{{"--files", opts.FilesDir}, {"--upload-dir", opts.UploadDir}} {
		if d.dir == "" {
			continue
		}
		if st, err := os.Stat(d.dir); err != nil || !st.IsDir() {
			return usageErrorf("%s %q: not a directory", d.flag, d.dir)
		}
	}

	if opts.StateDir != "" {
		if st, err := os.Stat(opts.StateDir); err == nil && !st.IsDir() {
			return usageErrorf("--state-dir %q: not a directory", opts.StateDir)
		}
	}

	var hosts []*bitssim.Host
	defer func() {
		for _, h := range hosts {
			h.Close()
		}
	}()
	var recs []simHostRecord
	for i, addr := range addrs {
		cfg := base
		cfg.Addr = addr
		cfg.Machine = fmt.Sprintf("SIM%02d", i+1)
		hostPassword := password
		if opts.PasswordPerHost {
			hostPassword = simHostPassword(password, generated, cfg.Machine)
			cfg.Users = map[string]string{opts.User: hostPassword}
		}
		hc := bitssim.HostConfig{Server: cfg, TLS: opts.TLS, Provider: bitssim.Config{TimeScale: opts.TimeScale, Slots: 4},
			FeatureNotInstalled: opts.NoFeature}
		if opts.StateDir != "" {
			hc.Provider.StateDir = filepath.Join(opts.StateDir, cfg.Machine)
		}
		var servers simServers
		if i == 0 {
			// One file and upload server is enough; every host can
			// reach it on loopback.
			hc.FilesDir, hc.UploadDir = opts.FilesDir, opts.UploadDir
			servers = readSimServers(opts.StateDir)
			hc.FilesAddr, hc.UploadAddr = servers.Files, servers.Uploads
			// Beside the host on its loopback address: a host on
			// 127.0.0.5 serves its files from 127.0.0.5 too, and comes
			// back there after a restart.
			if lo := loopbackHost(addr); lo != "" {
				if hc.FilesAddr == "" {
					hc.FilesAddr = net.JoinHostPort(lo, "0")
				}
				if hc.UploadAddr == "" {
					hc.UploadAddr = net.JoinHostPort(lo, "0")
				}
			}
		}
		h, err := bitssim.NewHost(hc)
		if err != nil {
			return fmt.Errorf("sim: %w", err)
		}
		hosts = append(hosts, h)
		if i == 0 && opts.StateDir != "" {
			if err := writeSimServers(opts.StateDir, h); err != nil {
				return fmt.Errorf("sim: %w", err)
			}
		}
		name := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(h.URL, "https://"), "http://"), "/wsman")
		rec := simHostRecord{Host: name, URL: h.URL, Machine: cfg.Machine, Auth: opts.Auth, User: opts.User,
			FilesURL: hosts[0].FilesURL, UploadURL: hosts[0].UploadURL}
		if generated || opts.PasswordPerHost {
			rec.Password = hostPassword
		}
		if opts.TLS {
			if rec.CAFile, err = h.Server.CAFile(); err != nil {
				return fmt.Errorf("sim: %w", err)
			}
			rec.CAFile, _ = filepath.Abs(rec.CAFile)
		}
		recs = append(recs, rec)
	}
	printSimHosts(f, opts, recs, generated)
	if opts.ready != nil {
		opts.ready(recs)
	}
	<-ctx.Done()
	if f.Conn.Output == "table" {
		f.IO.Warnf("sim: stopping")
	}
	return nil
}

// simHostPassword is a host's own password with --password-per-host:
// the given one with the machine's name after it, or a fresh one when
// none was given.
func simHostPassword(password string, generated bool, machine string) string {
	if generated {
		return randomSecret(12)
	}
	return password + "-" + machine
}

// simServers are the addresses of the file and upload servers, kept in
// --state-dir so that sim started again serves them where the jobs it
// kept expect them.
type simServers struct {
	Files   string `json:"files,omitempty"`
	Uploads string `json:"uploads,omitempty"`
}

const simServersFile = "servers.json"

// readSimServers returns the addresses a previous sim on dir used, or
// none (any free port) when there is no record.
func readSimServers(dir string) simServers {
	var s simServers
	if dir == "" {
		return s
	}
	if b, err := os.ReadFile(filepath.Join(dir, simServersFile)); err == nil {
		_ = json.Unmarshal(b, &s)
	}
	return s
}

// writeSimServers records where the host's file and upload servers listen.
func writeSimServers(dir string, h *bitssim.Host) error {
	var s simServers
	if h.Files != nil {
		s.Files = h.Files.Listener.Addr().String()
	}
	if h.Uploads != nil {
		s.Uploads = h.Uploads.Listener.Addr().String()
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("--state-dir: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, simServersFile), b, 0o600)
}

func printSimHosts(f *Factory, opts *SimOptions, recs []simHostRecord, generated bool) {
	if f.Conn.Output != "table" {
		out := newOutput(f.IO, "jsonl", true)
		for _, r := range recs {
			_ = out.emit(r.Host, r)
		}
		return
	}
	enc := "required"
	if !strings.EqualFold(opts.Encryption, "required") && !strings.EqualFold(opts.Encryption, "always") {
		enc = "optional"
	}
	for _, r := range recs {
		f.IO.Printf("host %s %s (machine %s, auth %s, encryption %s)\n", r.Host, r.URL, r.Machine, r.Auth, enc)
	}
	if r := recs[0]; r.FilesURL != "" {
		f.IO.Printf("files %s (from %s)\n", r.FilesURL, opts.FilesDir)
	}
	if r := recs[0]; r.UploadURL != "" {
		f.IO.Printf("uploads %s (into %s)\n", r.UploadURL, opts.UploadDir)
	}
	f.IO.Printf("user %s\n", opts.User)
	switch {
	case opts.PasswordPerHost:
		for _, r := range recs {
			f.IO.Printf("password %s %s (this host's own)\n", r.Host, r.Password)
		}
	case generated:
		f.IO.Printf("password %s (generated; set %s to choose one)\n", recs[0].Password, EnvPassword)
	}
	var hostFlags []string
	for _, r := range recs {
		h := r.Host
		if strings.Contains(strings.ToLower(opts.Auth), "kerberos") {
			// The ticket is for HTTP/<name>: a keytab names hosts, not
			// addresses.
			h = strings.Replace(h, "127.0.0.1:", "localhost:", 1)
		}
		hostFlags = append(hostFlags, "-H "+h)
	}
	env := "BITSREMOTE_PASSWORD=..."
	if generated {
		env = "BITSREMOTE_PASSWORD='" + recs[0].Password + "'"
	}
	auth := ""
	switch a := strings.ToLower(opts.Auth); {
	case strings.Contains(a, "ntlm"):
	case strings.Contains(a, "kerberos"):
		auth = " --auth kerberos"
	default:
		auth = " --auth basic"
	}
	tls := ""
	if opts.TLS {
		tls = " --https --ca-file " + recs[0].CAFile
	}
	if opts.PasswordPerHost {
		var lines []string
		for _, r := range recs {
			lines = append(lines, "'"+r.Host+" "+r.Password+"'")
		}
		f.IO.Printf("\nTry:\n  (umask 077; printf '%%s\\n' %s > passwords.map)\n  bitsremote list %s -u %s%s%s --password-map passwords.map\n",
			strings.Join(lines, " "), strings.Join(hostFlags, " "), opts.User, auth, tls)
		f.IO.Printf("Serving until Ctrl-C.\n")
		return
	}
	f.IO.Printf("\nTry:\n  %s bitsremote list %s -u %s%s%s\n", env, strings.Join(hostFlags, " "), opts.User, auth, tls)
	f.IO.Printf("Serving until Ctrl-C.\n")
}

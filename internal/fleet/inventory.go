// Package fleet runs bitsremote operations on many hosts at once: it reads
// inventories (-H lists, plain hosts files, Ansible INI and YAML
// inventories with --limit patterns), fans work out over a bounded number
// of hosts with one kept-alive authenticated connection each, records
// every job it creates in a durable ledger so that an interrupted transfer
// can resume without losing or duplicating jobs, and watches many jobs on
// many hosts with one progress line per host.
//
// The package holds no flag parsing and no rendering: the command line
// turns flags into a Config and results into output.
package fleet

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Default WinRM listener ports.
const (
	PortHTTP  = 5985
	PortHTTPS = 5986
)

// Host is one inventory entry: where to connect and the per-host settings
// an Ansible inventory may carry. Empty fields mean "use the command's
// default".
type Host struct {
	// Name identifies the host in output, errors and the ledger:
	// "host:port" when a port is known, else the inventory name.
	Name string
	// Address is the host name or IP to connect to (ansible_host, else
	// the inventory name).
	Address string
	// Port is the WinRM port (ansible_port); 0 leaves the default.
	Port int
	// Scheme is "http" or "https" (ansible_winrm_scheme, or a URL's
	// scheme); "" leaves the default.
	Scheme string
	// Path is the endpoint path; "" means /wsman.
	Path string
	// User is ansible_user; "" leaves --user.
	User string
	// Auth is ansible_winrm_transport's first method we support
	// (basic, ntlm, kerberos, certificate); "" leaves --auth.
	Auth string
	// Encryption is ansible_winrm_message_encryption (auto, always,
	// never); "" leaves --encryption.
	Encryption string
	// SPN is the Kerberos service principal to ask tickets for, from
	// ansible_winrm_service (default HTTP) and
	// ansible_winrm_kerberos_hostname_override (default Address), set
	// only when either is; "" leaves HTTP/<address>.
	SPN string
	// Groups are the inventory groups the host belongs to, directly or
	// through children, sorted; "all" and "ungrouped" included.
	Groups []string
}

// Endpoint resolves the host's WS-Management URL and output name with the
// command's defaults: defaultPort when the host names none (0 picks 5985,
// or 5986 with https) and https when the host names no scheme. A host
// with a port and no scheme uses https on 5986 and http on 5985, as
// Ansible's winrm connection does, and the default scheme on any other
// port.
func (h Host) Endpoint(defaultPort int, https bool) (name, endpoint string) {
	scheme := h.Scheme
	if scheme == "" {
		switch h.Port {
		case PortHTTPS:
			scheme = "https"
		case PortHTTP:
			scheme = "http"
		default:
			scheme = "http"
			if https {
				scheme = "https"
			}
		}
	}
	port := h.Port
	if port == 0 {
		port = defaultPort
	}
	if port == 0 {
		port = PortHTTP
		if scheme == "https" {
			port = PortHTTPS
		}
	}
	p := h.Path
	if p == "" {
		p = "/wsman"
	}
	hp := net.JoinHostPort(h.Address, strconv.Itoa(port))
	name = h.Name
	if name == "" || name == h.Address {
		name = hp
	}
	return name, scheme + "://" + hp + p
}

// ParseHost turns what a user writes after -H or on a hosts-file line
// ("host", "host:port", "[v6]:port", a bare IPv6 address, or an
// http(s):// URL) into a Host. A URL with a user or password is refused
// so that no secret is echoed or stored.
func ParseHost(spec string) (Host, error) {
	s := strings.TrimSpace(spec)
	if s == "" {
		return Host{}, fmt.Errorf("empty host name")
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return Host{}, fmt.Errorf("host %q: not a URL", redactURL(s))
		}
		if u.User != nil {
			return Host{}, fmt.Errorf("host %q: put the user in --user and the password in BITSREMOTE_PASSWORD, not in the URL", redactURL(s))
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return Host{}, fmt.Errorf("host %q: scheme must be http or https", s)
		}
		if u.Hostname() == "" {
			return Host{}, fmt.Errorf("host %q: no host name in the URL", s)
		}
		h := Host{Address: u.Hostname(), Scheme: u.Scheme}
		if u.Port() != "" {
			n, err := parsePort(u.Port())
			if err != nil {
				return Host{}, fmt.Errorf("host %q: %w", s, err)
			}
			h.Port = n
		} else if u.Scheme == "https" {
			h.Port = PortHTTPS
		} else {
			h.Port = PortHTTP
		}
		if u.Path != "" && u.Path != "/" && u.Path != "/wsman" {
			h.Path = u.Path
		}
		h.Name = net.JoinHostPort(h.Address, strconv.Itoa(h.Port))
		return h, nil
	}
	host, port := s, ""
	if hh, pp, err := net.SplitHostPort(s); err == nil {
		host, port = hh, pp
	} else if strings.Count(s, ":") > 1 {
		host = strings.Trim(s, "[]") // a bare IPv6 address
	} else if strings.Contains(s, ":") {
		return Host{}, fmt.Errorf("host %q: want host or host:port", s)
	}
	if host == "" || strings.ContainsAny(host, " \t/?#@[]") {
		return Host{}, fmt.Errorf("host %q: not a host name", s)
	}
	h := Host{Address: host, Name: host}
	if port != "" {
		n, err := parsePort(port)
		if err != nil {
			return Host{}, fmt.Errorf("host %q: %w", s, err)
		}
		h.Port = n
		h.Name = net.JoinHostPort(host, port)
	}
	return h, nil
}

func parsePort(p string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(p))
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", p)
	}
	return n, nil
}

// redactURL drops any userinfo so a password typed into a URL is not echoed.
func redactURL(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		rest := s[i+3:]
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			end = len(rest)
		}
		if at := strings.LastIndexByte(rest[:end], '@'); at >= 0 {
			return s[:i+3] + "REDACTED@" + rest[at+1:]
		}
	}
	return s
}

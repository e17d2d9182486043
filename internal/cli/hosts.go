package cli

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Default WinRM listener ports.
const (
	portHTTP  = 5985
	portHTTPS = 5986
)

// Endpoint is one host to talk to: the name used in output and errors and
// the WS-Management URL.
type Endpoint struct {
	// Name is what the user wrote, as "host" or "host:port"; it is the
	// host field of every result.
	Name string
	// URL is the WS-Management endpoint, e.g. http://host:5985/wsman.
	URL string
}

// parseHost turns "host", "host:port", "[v6]:port" or a URL into an
// Endpoint. A port in spec wins over defaultPort; https picks the scheme
// when spec is not a URL.
func parseHost(spec string, defaultPort int, https bool) (Endpoint, error) {
	s := strings.TrimSpace(spec)
	if s == "" {
		return Endpoint{}, fmt.Errorf("empty host name")
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return Endpoint{}, fmt.Errorf("host %q: %w", spec, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return Endpoint{}, fmt.Errorf("host %q: scheme must be http or https", spec)
		}
		if u.Hostname() == "" {
			return Endpoint{}, fmt.Errorf("host %q: no host name in the URL", spec)
		}
		if u.User != nil {
			return Endpoint{}, fmt.Errorf("host %q: put the user in --user and the password in BITSREMOTE_PASSWORD, not in the URL", redactURL(spec))
		}
		port := u.Port()
		if port == "" {
			port = "5985"
			if u.Scheme == "https" {
				port = "5986"
			}
		} else if err := checkPort(port); err != nil {
			return Endpoint{}, fmt.Errorf("host %q: %w", spec, err)
		}
		path := u.Path
		if path == "" || path == "/" {
			path = "/wsman"
		}
		hp := net.JoinHostPort(u.Hostname(), port)
		return Endpoint{Name: hp, URL: u.Scheme + "://" + hp + path}, nil
	}
	host, port := s, ""
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
		if err := checkPort(port); err != nil {
			return Endpoint{}, fmt.Errorf("host %q: %w", spec, err)
		}
	} else if strings.Count(s, ":") > 1 {
		// A bare IPv6 address.
		host = strings.Trim(s, "[]")
	} else if strings.Contains(s, ":") {
		return Endpoint{}, fmt.Errorf("host %q: %w", spec, err)
	}
	if host == "" || strings.ContainsAny(host, " /?#@") {
		return Endpoint{}, fmt.Errorf("host %q: not a host name", spec)
	}
	if port == "" {
		port = strconv.Itoa(defaultPort)
	}
	scheme := "http"
	if https {
		scheme = "https"
	}
	hp := net.JoinHostPort(host, port)
	return Endpoint{Name: hp, URL: scheme + "://" + hp + "/wsman"}, nil
}

func checkPort(p string) error {
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", p)
	}
	return nil
}

// redactURL drops any userinfo so a password typed into a URL is not echoed.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	u.User = url.User("REDACTED")
	return u.String()
}

// readHostsFile reads a simple inventory: one host, host:port or URL per
// line; blank lines and everything after '#' are ignored. Errors name the
// line.
func readHostsFile(r io.Reader, name string) ([]string, error) {
	var hosts []string
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if f := strings.Fields(line); len(f) > 1 {
			return nil, fmt.Errorf("%s line %d: want one host per line, got %q (Ansible inventories are not supported yet)", name, n, line)
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") && !strings.Contains(line, ":") {
			return nil, fmt.Errorf("%s line %d: group header %q: Ansible inventories are not supported yet; list one host per line", name, n, line)
		}
		hosts = append(hosts, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("%s: no hosts in the file", name)
	}
	return hosts, nil
}

package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/bitsremote/bitsremote/internal/fleet"
)

// passwordMapFlag is the flag's name in messages.
const passwordMapFlag = "--password-map"

// maxPasswordMapLine bounds one line of a password map, so that a file
// that is not one (a binary, a log) is refused rather than read whole.
const maxPasswordMapLine = 64 << 10

// passwordMap is --password-map FILE: each host's own password, as a
// LAPS fleet has a different local administrator password on every
// host. It never prints its passwords: errors name the file and the
// line, String and GoString only the file.
type passwordMap struct {
	file string
	// byName is keyed by mapName: "name" or "name:port", lower case.
	byName map[string]mapEntry
	// def is the "*" line, for hosts no line names.
	def *mapEntry
}

// mapEntry is one line's password and where it was written.
type mapEntry struct {
	password string
	line     int
}

// String names the map, never a password (a %v of the map in a log or a
// panic).
func (m *passwordMap) String() string {
	if m == nil {
		return "no password map"
	}
	n := len(m.byName)
	if m.def != nil {
		n++
	}
	return fmt.Sprintf("password map %s (%d lines)", m.file, n)
}

// GoString is String, for %#v.
func (m *passwordMap) GoString() string { return m.String() }

// loadPasswordMap reads --password-map FILE. A file that group or others
// may read or write is refused, as ssh refuses such a private key: it
// holds every host's administrator password.
func loadPasswordMap(file string) (*passwordMap, error) {
	fh, err := os.Open(file)
	if err != nil {
		return nil, usageErrorf("%s: %w", passwordMapFlag, err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, usageErrorf("%s: %w", passwordMapFlag, err)
	}
	if !st.Mode().IsRegular() {
		return nil, usageErrorf("%s %s: not a regular file", passwordMapFlag, file)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, usageErrorf("%s %s: permissions %04o are too open: group or others may read or change it, and it holds passwords; make it private with chmod 600 %s (as ssh requires of a private key)",
			passwordMapFlag, file, perm, file)
	}
	return parsePasswordMap(file, fh)
}

// parsePasswordMap reads lines of "NAME PASSWORD": NAME is a host, a
// host:port or "*", then a run of spaces or tabs, then the password: the
// rest of the line, spaces included, less a trailing CR. Blank lines and
// lines starting with # are skipped. No error quotes a line: a line is
// malformed perhaps because its columns are swapped, and then its "name"
// is a password.
func parsePasswordMap(file string, r io.Reader) (*passwordMap, error) {
	m := &passwordMap{file: file, byName: map[string]mapEntry{}}
	bad := func(line int, format string, a ...any) error {
		return usageErrorf("%s %s: line %d: %s", passwordMapFlag, file, line, fmt.Sprintf(format, a...))
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxPasswordMapLine)
	n := 0
	for sc.Scan() {
		n++
		b := sc.Bytes()
		if n == 1 {
			b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // a BOM from Windows editors
		}
		s := strings.TrimSuffix(string(b), "\r")
		s = strings.TrimLeft(s, " \t")
		if s == "" || s[0] == '#' {
			continue
		}
		i := strings.IndexAny(s, " \t")
		if i < 0 {
			return nil, bad(n, "no password after the name (want NAME PASSWORD)")
		}
		name, password := s[:i], strings.TrimLeft(s[i:], " \t")
		if password == "" {
			return nil, bad(n, "no password after the name (want NAME PASSWORD)")
		}
		e := mapEntry{password: password, line: n}
		if name == "*" {
			if m.def != nil {
				return nil, bad(n, "a second * line (the first is line %d)", m.def.line)
			}
			m.def = &e
			continue
		}
		if strings.ContainsAny(name, "*?") {
			return nil, bad(n, "a name with * or ?: names are matched whole; * alone is the default for hosts no line names")
		}
		key, ok := mapName(name)
		if !ok {
			return nil, bad(n, "the name is not a host, host:port or * (want NAME PASSWORD)")
		}
		if prev, dup := m.byName[key]; dup {
			return nil, bad(n, "the same host as line %d", prev.line)
		}
		m.byName[key] = e
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, bad(n+1, "longer than %d KiB", maxPasswordMapLine>>10)
		}
		return nil, usageErrorf("%s %s: %w", passwordMapFlag, file, err)
	}
	if len(m.byName) == 0 && m.def == nil {
		return nil, usageErrorf("%s %s: no NAME PASSWORD line", passwordMapFlag, file)
	}
	return m, nil
}

// mapName is a map line's name as a key: "name:port" when it has a port,
// else "name", lower case (host names are not case sensitive). It takes
// what -H takes; a URL stands for its host:port.
func mapName(name string) (string, bool) {
	h, err := fleet.ParseHost(name)
	if err != nil {
		return "", false
	}
	addr := strings.ToLower(h.Address)
	if h.Port == 0 {
		return addr, true
	}
	return net.JoinHostPort(addr, fmt.Sprint(h.Port)), true
}

// hostKeys are the keys a host answers to in a map, most specific first:
// its name as the user wrote it (the -H value or the inventory name, not
// ansible_host) with the port it is reached on, then without a port.
func hostKeys(h fleet.Host, endpoint string) (withPort, bare string) {
	name := h.Name
	if name == "" {
		name = h.Address
	}
	if p, err := fleet.ParseHost(name); err == nil {
		name = p.Address
	}
	bare = strings.ToLower(name)
	port := ""
	if u, err := url.Parse(endpoint); err == nil {
		port = u.Port()
	}
	return net.JoinHostPort(bare, port), bare
}

// lookup finds h's password: the line naming h with the port it is
// reached on (endpoint's), else the line naming it without a port, else
// the * line. ok is false when none applies (the usual password then).
func (m *passwordMap) lookup(h fleet.Host, endpoint string) (e mapEntry, ok bool) {
	if m == nil {
		return mapEntry{}, false
	}
	withPort, bare := hostKeys(h, endpoint)
	if e, ok := m.byName[withPort]; ok {
		return e, true
	}
	if e, ok := m.byName[bare]; ok {
		return e, true
	}
	if m.def != nil {
		return *m.def, true
	}
	return mapEntry{}, false
}

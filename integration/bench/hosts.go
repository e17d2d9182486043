package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"

	"github.com/bitsremote/bitsremote/bitsprov/bitssim"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// hostsReady is what the hosts process prints once every host serves.
type hostsReady struct {
	// URLs are the NTLM hosts that require encryption, like a default
	// Windows listener.
	URLs []string `json:"urls"`
	// BasicURL is one extra host that also accepts Basic over http, for
	// the Basic comparison with pywinrm.
	BasicURL string `json:"basicUrl"`
	// FilesURL serves the download source of the transfer benchmark.
	FilesURL string `json:"filesUrl"`
	// Fallback reports that 127.0.0.x addresses could not be bound and
	// every host listens on 127.0.0.1 with its own port.
	Fallback bool `json:"fallback"`
}

// hostsStats is the answer to "stats" on the hosts process's stdin.
type hostsStats struct {
	Handshakes int `json:"handshakes"`
	// Connections counts TCP connections accepted by the NTLM hosts.
	Connections int     `json:"connections"`
	Requests    int     `json:"requests"`
	CPU         float64 `json:"cpu"`
	// Statuses counts the HTTP statuses other than 200 the hosts sent
	// (auth legs' 401s included), to tell re-authentication from errors.
	Statuses map[int]int `json:"statuses"`
}

// raiseFileLimit lifts the soft limit on open files to the hard limit: a
// thousand hosts need a listener and a connection each.
func raiseFileLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, err
		}
	}
	return rl.Cur, nil
}

// hostAddrs returns n listen addresses: 127.0.0.1, 127.0.0.2, ... with
// one port (Linux routes all of 127/8 to loopback), or, when a second
// loopback address cannot be bound (macOS without aliases), 127.0.0.1
// with any free port each.
func hostAddrs(n int) (addrs []string, fallback bool, err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, false, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	if probe, err := net.Listen("tcp", net.JoinHostPort("127.0.0.2", strconv.Itoa(port))); err != nil {
		fallback = true
	} else {
		probe.Close()
	}
	ip := netip.MustParseAddr("127.0.0.1")
	for range n {
		if fallback {
			addrs = append(addrs, "127.0.0.1:0")
			continue
		}
		if !ip.IsLoopback() {
			return nil, false, fmt.Errorf("%d hosts run past 127.255.255.255", n)
		}
		addrs = append(addrs, net.JoinHostPort(ip.String(), strconv.Itoa(port)))
		ip = ip.Next()
	}
	return addrs, fallback, nil
}

// serveHosts runs the simulated hosts until stdin closes; it is the
// "-role hosts" child, so that their CPU is not counted as the client's.
func serveHosts(n int, user, password, filesDir string, timeScale float64) error {
	if _, err := raiseFileLimit(); err != nil {
		return fmt.Errorf("raise the open-files limit: %w", err)
	}
	addrs, fallback, err := hostAddrs(n + 1)
	if err != nil {
		return err
	}
	var hosts []*bitssim.Host
	defer func() {
		for _, h := range hosts {
			h.Close()
		}
	}()
	ready := hostsReady{Fallback: fallback}
	for i, addr := range addrs {
		cfg := wsmantest.Config{
			Auth:              wsmantest.AuthNTLM,
			Users:             map[string]string{user: password},
			RequireEncryption: true,
			Machine:           fmt.Sprintf("SIM%04d", i+1),
			Addr:              addr,
		}
		if i == n {
			cfg.Auth |= wsmantest.AuthBasic
			cfg.RequireEncryption = false
		}
		hc := bitssim.HostConfig{Server: cfg, Provider: bitssim.Config{TimeScale: timeScale, Slots: 4}}
		if i == 0 {
			hc.FilesDir = filesDir
		}
		h, err := bitssim.NewHost(hc)
		if err != nil {
			return fmt.Errorf("host %d on %s: %w", i+1, addr, err)
		}
		hosts = append(hosts, h)
		if i == n {
			ready.BasicURL = h.URL
		} else {
			ready.URLs = append(ready.URLs, h.URL)
		}
	}
	ready.FilesURL = hosts[0].FilesURL
	out := json.NewEncoder(os.Stdout)
	if err := out.Encode(ready); err != nil {
		return err
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() != "stats" {
			continue
		}
		st := hostsStats{Statuses: map[int]int{}}
		for _, h := range hosts {
			for _, e := range h.Server.Log() {
				if e.Status != 200 {
					st.Statuses[e.Status]++
				}
			}
			st.Handshakes += h.Server.NTLMHandshakes()
			st.Connections += h.Server.Connections()
			st.Requests += len(h.Server.Log())
		}
		st.CPU = cpuSeconds()
		if err := out.Encode(st); err != nil {
			return err
		}
	}
	return nil
}

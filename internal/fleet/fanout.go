package fleet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/transport"
)

// DefaultConcurrency is how many hosts are worked on at once by default.
const DefaultConcurrency = 32

// Connector turns Hosts into connections: the transport settings shared
// by every host, and the defaults a Host's empty fields fall back to.
type Connector struct {
	// Base is the transport configuration of every host (the password
	// included); a Host's User, Auth and Encryption override it.
	Base transport.Config
	// DefaultPort is the port of hosts that name none (0: 5985, or 5986
	// with https).
	DefaultPort int
	// HTTPS is the scheme of hosts that name none.
	HTTPS bool
	// OperationTimeout is sent with every request (0: wsman's default).
	OperationTimeout time.Duration
	// NewTransport builds a host's transport (nil: transport.New).
	NewTransport func(transport.Config) (transport.Transport, error)
	// Wrap, if set, wraps each host's transport (a debug log, a recorder).
	Wrap func(host string, t transport.Transport) transport.Transport
	// Configure, if set, adjusts each host's wsman.Client (a retry
	// policy, a locale) before first use.
	Configure func(*wsman.Client)
	// Password, if set, gives a host its own password in place of
	// Base's when ok (a LAPS fleet, where each host's local
	// administrator has another). It is not asked for hosts that
	// authenticate with a certificate. The password goes into that
	// host's transport.Config and nowhere else: not the Conn, not the
	// ledger.
	Password func(h Host) (password string, ok bool)
}

// Conn is one host's clients. Every call to the host goes through one
// kept-alive connection, authenticated once.
type Conn struct {
	Host Host
	// Name identifies the host in output ("host:port").
	Name string
	// URL is the WS-Management endpoint.
	URL   string
	WSMan *wsman.Client
	Bits  *bitsprov.Client
	t     transport.Transport
	// user is the account the connection authenticates as (the host's
	// own user, else the command's; with Kerberos, the principal).
	user string
}

// Close drops the host's kept-alive connection.
func (c *Conn) Close() {
	if ci, ok := c.t.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// Connect builds the clients for h. Nothing is sent yet: the connection
// is made and authenticated on the first request.
func (cn *Connector) Connect(h Host) (*Conn, error) {
	name, url := h.Endpoint(cn.DefaultPort, cn.HTTPS)
	cfg := cn.Base
	if h.User != "" {
		cfg.User = h.User
	}
	if h.Auth != "" {
		a, err := transport.ParseAuth(h.Auth)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		cfg.Auth = a
	}
	if h.Encryption != "" {
		e, err := transport.ParseEncryption(h.Encryption)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		cfg.Encryption = e
	}
	if h.SPN != "" {
		cfg.SPN = h.SPN
	}
	if cn.Password != nil && cfg.Auth != transport.AuthCertificate {
		if p, ok := cn.Password(h); ok {
			cfg.Password = p
		}
	}
	// One connection per host: NTLM needs it, and a thousand hosts times
	// a pool would exhaust file descriptors.
	cfg.MaxConnsPerHost, cfg.MaxIdleConnsPerHost = 1, 1
	nt := cn.NewTransport
	if nt == nil {
		nt = transport.New
	}
	t, err := nt(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if cn.Wrap != nil {
		t = cn.Wrap(name, t)
	}
	wc := wsman.NewClient(url, t)
	wc.Host = name
	wc.OperationTimeout = cn.OperationTimeout
	if cn.Configure != nil {
		cn.Configure(wc)
	}
	user := cfg.User
	if cfg.Auth == transport.AuthKerberos {
		// The principal, however -u spelled it, or the ticket cache's
		// without -u; when it cannot be read, the first request says why.
		if p, err := transport.KerberosPrincipal(cfg); err == nil {
			user = p
		}
	}
	return &Conn{Host: h, Name: name, URL: url, WSMan: wc, Bits: bitsprov.NewClient(wc), t: t, user: user}, nil
}

// Pool holds one Conn per host for the life of a command, so that
// successive fan-outs (create, then wait) reuse the authenticated
// connections.
type Pool struct {
	hosts []Host
	cn    *Connector
	mu    sync.Mutex
	conns []*Conn
}

// NewPool returns a pool over hosts; connections are built on first use.
// Hosts with the same endpoint are kept once.
func NewPool(hosts []Host, cn *Connector) *Pool {
	seen := map[string]bool{}
	var uniq []Host
	for _, h := range hosts {
		_, url := h.Endpoint(cn.DefaultPort, cn.HTTPS)
		if seen[url] {
			continue
		}
		seen[url] = true
		uniq = append(uniq, h)
	}
	return &Pool{hosts: uniq, cn: cn, conns: make([]*Conn, len(uniq))}
}

// Hosts returns the pool's hosts, in order.
func (p *Pool) Hosts() []Host { return p.hosts }

// Names returns the hosts' output names, in order.
func (p *Pool) Names() []string {
	out := make([]string, len(p.hosts))
	for i, h := range p.hosts {
		out[i], _ = h.Endpoint(p.cn.DefaultPort, p.cn.HTTPS)
	}
	return out
}

// Conn returns host i's connection, building it on first use.
func (p *Pool) Conn(i int) (*Conn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns[i] != nil {
		return p.conns[i], nil
	}
	c, err := p.cn.Connect(p.hosts[i])
	if err != nil {
		return nil, err
	}
	p.conns[i] = c
	return c, nil
}

// Close drops every kept-alive connection, and the pool's hold on them
// (a later Conn connects again). It may be called more than once.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, c := range p.conns {
		if c != nil {
			c.Close()
			p.conns[i] = nil
		}
	}
}

// Options shape a fan-out.
type Options struct {
	// Concurrency bounds the hosts worked on at once (0:
	// DefaultConcurrency).
	Concurrency int
	// HostTimeout bounds each host's work (0: none).
	HostTimeout time.Duration
	// Classify maps a host's error to an exit code (nil: 1 for any
	// error). The worst (highest) code is the summary's.
	Classify func(error) int
	// OnResult, if set, is called as each host finishes, from the
	// host's goroutine.
	OnResult func(Result)
}

// Result is one host's outcome.
type Result struct {
	Host    string
	Err     error
	Code    int
	Elapsed time.Duration
}

// Summary counts a fan-out's outcomes.
type Summary struct {
	Hosts, OK, Failed int
	// Code is the worst exit code of any host (0 when all succeeded).
	Code int
}

// String reads "12 hosts: 11 ok, 1 failed".
func (s Summary) String() string {
	return fmt.Sprintf("%d hosts: %d ok, %d failed", s.Hosts, s.OK, s.Failed)
}

// Err is nil when every host succeeded, else an error counting failures.
func (s Summary) Err() error {
	if s.Failed == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d hosts failed", s.Failed, s.Hosts)
}

// Run calls fn once per host, at most Concurrency at a time, and returns
// the results in host order. A host's failure does not stop the others;
// cancelling ctx stops hosts not yet started (their results carry
// ctx's error) and is passed to those running.
func (p *Pool) Run(ctx context.Context, o Options, fn func(ctx context.Context, c *Conn) error) ([]Result, Summary) {
	n := len(p.hosts)
	workers := o.Concurrency
	if workers <= 0 {
		workers = DefaultConcurrency
	}
	workers = min(workers, n)
	classify := o.Classify
	if classify == nil {
		classify = func(err error) int {
			if err == nil {
				return 0
			}
			return 1
		}
	}
	names := p.Names()
	results := make([]Result, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				start := time.Now()
				err := p.runOne(ctx, i, o.HostTimeout, fn)
				if err != nil && !strings.HasPrefix(err.Error(), names[i]) {
					err = fmt.Errorf("%s: %w", names[i], err)
				}
				r := Result{Host: names[i], Err: err, Code: classify(err), Elapsed: time.Since(start)}
				if err != nil && r.Code == 0 {
					r.Code = 1
				}
				results[i] = r
				if o.OnResult != nil {
					o.OnResult(r)
				}
			}
		}()
	}
	wg.Wait()
	s := Summary{Hosts: n}
	for _, r := range results {
		if r.Err == nil {
			s.OK++
		} else {
			s.Failed++
		}
		s.Code = max(s.Code, r.Code)
	}
	return results, s
}

func (p *Pool) runOne(ctx context.Context, i int, timeout time.Duration, fn func(ctx context.Context, c *Conn) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("not started: %w", err)
	}
	c, err := p.Conn(i)
	if err != nil {
		return err
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, fmt.Errorf("%w: the per-host time limit of %v passed", context.DeadlineExceeded, timeout))
		defer cancel()
	}
	err = fn(ctx, c)
	if err != nil && ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
		if cause := context.Cause(ctx); cause != nil && cause != ctx.Err() {
			err = fmt.Errorf("%w (%v)", err, cause)
		}
	}
	return err
}

// Package bitssim is a simulated Windows BITS provider: it serves the WMI
// class BitsClientJob (root\microsoft\bits) to a wsmantest server with the
// real job state machine and real transfers. Downloads come over HTTP into
// local files, uploads go out with the BITS upload protocol; priorities,
// suspend, cancel, complete, retry delays and transient errors behave as the
// BITS documentation describes, and errors come back with the provider's
// codes and Windows' descriptions.
//
// Where Windows' behaviour is not documented or captured, the comment at
// the spot says which evidence was followed.
package bitssim

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf16"

	"github.com/bitsremote/bitsremote/bitsprov"
	"github.com/bitsremote/bitsremote/wsman"
	"github.com/bitsremote/bitsremote/wsman/wsmantest"
)

// Config configures a Provider. The zero value is usable.
type Config struct {
	// TimeScale multiplies every job duration (MinimumRetryDelay,
	// NoProgressTimeout): 0.001 makes the default 600 s retry delay take
	// 0.6 s. Zero means 1 (real time).
	TimeScale float64
	// Clock is the time source; nil means the wall clock.
	Clock Clock
	// Slots is the number of jobs transferring at once (BITS works on few
	// jobs at a time, which makes priority observable). Zero means 1.
	Slots int
	// HTTPClient makes the transfers; nil means a client of the provider's
	// own with no overall timeout (stalls are caught by NoProgressTimeout)
	// that honours each job's SetProxySettings. A client given here
	// ignores them.
	HTTPClient *http.Client
	// FragmentSize is the size of upload fragments; zero means 64 KiB.
	FragmentSize int
	// StateDir, if set, is where Open keeps the job queue so that a
	// provider started again on it has the same jobs, as the BITS service
	// keeps its queue across restarts. New ignores it.
	StateDir string
	// LocalRoot, if set, is where Windows paths in LocalFile live on this
	// machine: C:\data\f.bin is LocalRoot/C/data/f.bin. Absolute paths of
	// this OS are always used as they are.
	LocalRoot string
}

// Provider is the simulated BitsClientJob provider. It implements
// wsmantest.Provider. Close stops its transfers.
type Provider struct {
	cfg    Config
	clock  Clock
	client *http.Client

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	jobs    map[string]*job // key: upper-case JobId
	seq     uint64
	running int
	closed  bool

	// statePath is the queue file when the provider was opened on a
	// StateDir; lastSaved is what was last written there.
	statePath string
	saveMu    sync.Mutex
	lastSaved []byte
}

var _ wsmantest.Keyed = (*Provider)(nil)

// Keys names BitsClientJob's key property, so that the server checks
// selectors and builds EPRs as WinRM does.
func (p *Provider) Keys() []string { return []string{"JobId"} }

// New returns a provider with an empty job queue.
func New(cfg Config) *Provider {
	if cfg.TimeScale <= 0 {
		cfg.TimeScale = 1
	}
	if cfg.Slots <= 0 {
		cfg.Slots = 1
	}
	if cfg.FragmentSize <= 0 {
		cfg.FragmentSize = 64 << 10
	}
	p := &Provider{cfg: cfg, clock: cfg.Clock, client: cfg.HTTPClient, jobs: map[string]*job{}}
	if p.clock == nil {
		p.clock = realClock{}
	}
	if p.client == nil {
		// An own transport, so that Close drops only our connections.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = proxyFromContext
		p.client = &http.Client{Transport: tr}
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	return p
}

// Close stops every transfer and retry timer and waits for them; jobs keep
// their state but no longer make progress.
func (p *Provider) Close() error {
	p.mu.Lock()
	p.closed = true
	var runs []*run
	for _, j := range p.jobs {
		if j.run != nil {
			runs = append(runs, j.run)
		}
	}
	p.mu.Unlock()
	p.cancel()
	for _, r := range runs {
		<-r.done
	}
	p.wg.Wait()
	p.client.CloseIdleConnections()
	if p.statePath != "" {
		// The transfers have stopped: their last progress is on disk.
		return p.save()
	}
	return nil
}

// lookup finds the job addressed by the request's selectors. It returns a
// fault for missing, extra or unknown selectors and for an unknown JobId.
// Final jobs are returned; callers decide what they mean.
func (p *Provider) lookup(r *wsmantest.Request, operation string) (*job, error) {
	if len(r.Selectors) == 0 {
		return nil, faultInvalidSelectors(r.Machine, "InsufficientSelectors")
	}
	if len(r.Selectors) > 1 || !strings.EqualFold(r.Selectors[0].Name, "JobId") {
		return nil, faultInvalidSelectors(r.Machine, "UnexpectedSelectors")
	}
	id := r.Selectors[0].Value
	p.mu.Lock()
	j := p.jobs[strings.ToUpper(strings.TrimSpace(id))]
	p.mu.Unlock()
	if j == nil {
		return nil, p.faultNotFound(r.Machine, operation, id)
	}
	return j, nil
}

// Get returns the job named by the JobId selector. A job that has been
// completed or cancelled has left the queue and is not found, as for
// enumerations (life-cycle doc: final jobs no longer appear).
func (p *Provider) Get(ctx context.Context, r *wsmantest.Request) (*wsman.Instance, error) {
	j, err := p.lookup(r, "GetObject")
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if j.state.Final() {
		return nil, p.faultNotFound(r.Machine, "GetObject", r.Selectors[0].Value)
	}
	return j.instance(), nil
}

// Enumerate returns every job still in the queue, in creation order,
// filtered by a JobId selector filter. A WQL filter is the server's to
// check and apply (see jobSchema).
func (p *Provider) Enumerate(ctx context.Context, r *wsmantest.EnumerateRequest) ([]*wsman.Instance, error) {
	var id string
	for _, s := range r.SelectorFilter {
		if !strings.EqualFold(s.Name, "JobId") {
			return nil, faultCannotProcessFilter(r.Machine, s.Name, fmt.Errorf("unknown key %q", s.Name))
		}
		id = strings.ToUpper(strings.TrimSpace(s.Value))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	jobs := make([]*job, 0, len(p.jobs))
	for _, j := range p.jobs {
		if !j.state.Final() && (id == "" || j.id == id) {
			jobs = append(jobs, j)
		}
	}
	slices.SortFunc(jobs, func(a, b *job) int { return int(a.seq) - int(b.seq) })
	out := make([]*wsman.Instance, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, j.instance())
	}
	return out, nil
}

// Put applies the writable properties of in (DisplayName, Description,
// Priority, MinimumRetryDelay, NoProgressTimeout) and returns the updated
// job.
//
// The rule for everything else is one: a read-only property is ignored
// whatever value it carries, except the key JobId, which must name the job
// the selectors address. Why: Set-WSManInstance (and winrm.vbs) Get the
// instance, patch the properties asked for and Put the whole document
// back, so a Put always carries every read-only property as it was read.
// Counters and State may have moved since (the job transfers meanwhile),
// so a stale copy of them is indistinguishable from an attempted write,
// and refusing it would make Set-WSManInstance fail at random on a busy
// job; a provider that reads only its writable properties from the body
// behaves this way. Owner, JobCreationTime and the other read-only
// properties are treated the same, so the rule does not depend on which
// ones happen to be able to move. The key is different: a body whose
// JobId is not the job in the selectors describes another instance, and
// silently updating the selected job from it would apply one job's
// settings to another; that is refused with WBEM_E_READ_ONLY (0x80041023),
// the WMI status for writing a read-only property. [I] No capture of a
// BITS provider Put exists.
func (p *Provider) Put(ctx context.Context, r *wsmantest.Request, in *wsman.Instance) (*wsman.Instance, error) {
	j, err := p.lookup(r, "PutInstance")
	if err != nil {
		return nil, err
	}
	if in == nil {
		return nil, faultInvalidParameter(r.Machine, wbemInvalidParameter, "The Put body holds no BitsClientJob instance.")
	}
	j.op.Lock()
	defer j.op.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if j.state.Final() {
		return nil, p.faultNotFound(r.Machine, "PutInstance", r.Selectors[0].Value)
	}
	cur := j.instance()
	name, desc, prio := j.displayName, j.description, j.priority
	retry, noProgress := j.retryDelay, j.noProgressTimeout
	for _, prop := range in.Props {
		cp := findProp(cur, prop.Name)
		if cp == nil {
			return nil, faultInvalidParameter(r.Machine, wbemInvalidParameter,
				fmt.Sprintf("BitsClientJob has no property %q.", prop.Name))
		}
		if len(prop.Values) == 1 && prop.Values[0].Kind == wsman.KindNil {
			continue // NULL leaves the value as it is
		}
		text := ""
		if len(prop.Values) > 0 {
			text = prop.Values[0].Text
		}
		switch cp.Name {
		case "DisplayName":
			if wcharLen(text) > 256 {
				return nil, faultProvider(r.Machine, bgEStringTooLong, describe(bgEStringTooLong))
			}
			name = text
		case "Description":
			if wcharLen(text) > 1024 {
				return nil, faultProvider(r.Machine, bgEStringTooLong, describe(bgEStringTooLong))
			}
			desc = text
		case "Priority":
			v, perr := strconv.ParseUint(strings.TrimSpace(text), 10, 32)
			if perr != nil {
				return nil, faultInvalidParameter(r.Machine, wbemTypeMismatch, fmt.Sprintf("Priority %q is not a uint32.", text))
			}
			if !bitsprov.Priority(v).Valid() {
				return nil, faultProvider(r.Machine, eInvalidArg, describe(eInvalidArg))
			}
			prio = bitsprov.Priority(v)
		case "MinimumRetryDelay", "NoProgressTimeout":
			v, perr := strconv.ParseUint(strings.TrimSpace(text), 10, 32)
			if perr != nil {
				return nil, faultInvalidParameter(r.Machine, wbemTypeMismatch, fmt.Sprintf("%s %q is not a uint32.", cp.Name, text))
			}
			if cp.Name == "MinimumRetryDelay" {
				// SetMinimumRetryDelay raises values below 5 s to 5 s.
				retry = max(uint32(v), minRetryDelay)
			} else {
				noProgress = uint32(v)
			}
		case "JobId":
			if len(prop.Values) != 1 || !strings.EqualFold(strings.TrimSpace(text), cp.Values[0].Text) {
				return nil, faultProvider(r.Machine, wbemReadOnly,
					fmt.Sprintf("The property %s is read-only.", cp.Name))
			}
		}
	}
	changed := name != j.displayName || desc != j.description ||
		prio != j.priority || retry != j.retryDelay || noProgress != j.noProgressTimeout
	if changed {
		prioChanged := prio != j.priority
		j.displayName, j.description, j.priority = name, desc, prio
		j.retryDelay, j.noProgressTimeout = retry, noProgress
		j.modified = p.clock.Now()
		if prioChanged {
			p.scheduleLocked()
		}
	}
	return j.instance(), nil
}

// findProp finds a property by name case-insensitively, as WMI matches names.
// wcharLen is the length of s in UTF-16 code units: BITS' limits on
// DisplayName (256) and Description (1,024) count Windows WCHARs, not
// bytes, so "é" counts once and a character beyond the BMP twice.
func wcharLen(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

func findProp(in *wsman.Instance, name string) *wsman.Property {
	if in == nil {
		return nil
	}
	for i := range in.Props {
		if strings.EqualFold(in.Props[i].Name, name) {
			return &in.Props[i]
		}
	}
	return nil
}

// now is the provider's clock reading.
func (p *Provider) now() time.Time { return p.clock.Now() }

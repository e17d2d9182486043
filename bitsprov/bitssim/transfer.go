package bitssim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bitsremote/bitsremote/bitsprov"
)

// minHTTPWait bounds the synchronous upload packets sent from Complete and
// Cancel, whatever the time scale.
const minHTTPWait = 2 * time.Second

// run is one transfer attempt of a job.
type run struct {
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// stop cancels the run and waits until its goroutine has let go of the
// job's files. It is safe on a nil run.
func (r *run) stop() {
	if r == nil {
		return
	}
	r.cancel()
	<-r.done
}

// detachLocked takes the job's run away from it, freeing its slot; the
// caller stops the run after unlocking. Progress the run reports after
// this point is ignored.
func (p *Provider) detachLocked(j *job) *run {
	r := j.run
	if r != nil {
		j.run = nil
		p.running--
	}
	return r
}

// snapshotFiles copies the job's files for use without the lock.
func (j *job) snapshotFiles() []file {
	out := make([]file, len(j.files))
	for i, f := range j.files {
		out[i] = *f
	}
	return out
}

// scheduleLocked starts queued jobs while transfer slots are free, best
// priority first and then oldest first. A queued job of a strictly better
// priority preempts the worst running job, which goes back to the queue
// and later resumes where it stopped (Foreground jobs do not wait for
// Normal ones).
func (p *Provider) scheduleLocked() {
	if p.closed {
		return
	}
	var queued, running []*job
	for _, j := range p.jobs {
		switch {
		case j.state == bitsprov.StateQueued && j.run == nil:
			queued = append(queued, j)
		case j.run != nil:
			running = append(running, j)
		}
	}
	better := func(a, b *job) int {
		if a.priority != b.priority {
			return int(a.priority) - int(b.priority)
		}
		return int(a.seq) - int(b.seq)
	}
	slices.SortFunc(queued, better)
	slices.SortFunc(running, better)
	for _, j := range queued {
		if p.running >= p.cfg.Slots {
			if len(running) == 0 {
				return
			}
			victim := running[len(running)-1]
			if victim.priority <= j.priority {
				return
			}
			running = running[:len(running)-1]
			r := p.detachLocked(victim)
			victim.state = bitsprov.StateQueued
			r.cancel() // its goroutine exits on its own; the next run waits for it
		}
		p.startLocked(j)
	}
}

// startLocked starts a transfer goroutine for j.
func (p *Provider) startLocked(j *job) {
	ctx, cancel := context.WithCancel(p.ctx)
	r := &run{ctx: ctx, cancel: cancel, done: make(chan struct{})}
	var prev chan struct{}
	if j.lastRun != nil {
		prev = j.lastRun.done
	}
	j.run, j.lastRun = r, r
	p.running++
	j.state = bitsprov.StateConnecting
	j.modified = p.now()
	j.err = nil
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(r.done)
		defer cancel()
		if prev != nil {
			<-prev // a preempted run may still be closing the same temp file
		}
		p.transfer(r, j)
	}()
}

// current runs f with the lock held if r is still the job's run, and
// reports whether it was.
func (p *Provider) current(j *job, r *run, f func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if j.run != r {
		return false
	}
	f()
	return true
}

// transfer moves every unfinished file of the job and records the outcome.
func (p *Provider) transfer(r *run, j *job) {
	var files []file
	var typ bitsprov.JobType
	var noProgress uint32
	t := &transferCtx{p: p, j: j, r: r}
	ok := p.current(j, r, func() {
		files, typ, noProgress = j.snapshotFiles(), j.typ, j.noProgressTimeout
		j.settings(t)
	})
	if !ok {
		return
	}
	if noProgress > 0 {
		t.watch = newWatchdog(r.ctx, p.clock, p.scaled(noProgress), r.cancel)
		defer t.watch.close()
	}
	var jerr *jobError
	for i := range files {
		if files[i].completed {
			continue
		}
		if typ == bitsprov.TypeDownload {
			jerr = t.download(i, files[i])
		} else {
			jerr = t.upload(i, files[i])
		}
		if jerr != nil {
			break
		}
	}
	if jerr != nil && t.watch != nil && t.watch.fired() {
		// No byte moved for NoProgressTimeout: the job gives up.
		jerr = &jobError{context: bitsprov.ContextGeneralTransport, code: winhttpTimeout}
	} else if r.ctx.Err() != nil {
		return // suspended, cancelled, completed, preempted or closed
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if j.run != r {
		return
	}
	p.detachLocked(j)
	now := p.now()
	j.modified = now
	switch {
	case jerr == nil && j.filesTransferred() < uint32(len(j.files)):
		// AddFile added work while this run went through its snapshot.
		j.state = bitsprov.StateQueued
	case jerr == nil:
		j.state = bitsprov.StateTransferred
		j.completed = now
	case jerr.transient && j.noProgressTimeout > 0:
		j.state = bitsprov.StateTransientError
		j.err = jerr
		j.transientErrors++
		p.retryLocked(j)
	default:
		j.state = bitsprov.StateError
		j.err = jerr
	}
	p.scheduleLocked()
}

// retryLocked arms the retry of a job in TransientError: after
// MinimumRetryDelay it is queued again, unless NoProgressTimeout (counted
// from its last progress) runs out first, which moves it to Error.
func (p *Provider) retryLocked(j *job) {
	gen := j.gen
	delay := p.scaled(j.retryDelay)
	left := p.scaled(j.noProgressTimeout) - p.now().Sub(j.progressAt)
	toError := left <= delay
	wait := delay
	if toError {
		wait = max(left, 0)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		select {
		case <-p.clock.After(wait):
		case <-p.ctx.Done():
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if j.gen != gen || j.state != bitsprov.StateTransientError {
			return
		}
		j.modified = p.now()
		if toError {
			j.state = bitsprov.StateError
			return
		}
		j.state = bitsprov.StateQueued
		p.scheduleLocked()
	}()
}

// settings copies the job's credentials and proxy settings into t; the
// caller holds the lock. Basic credentials are the ones a simulated
// transfer can use.
func (j *job) settings(t *transferCtx) {
	if c, found := j.creds[[2]uint16{uint16(bitsprov.TargetServer), uint16(bitsprov.SchemeBasic)}]; found {
		t.user, t.pass = c[0], c[1]
	}
	if c, found := j.creds[[2]uint16{uint16(bitsprov.TargetProxy), uint16(bitsprov.SchemeBasic)}]; found {
		t.proxyUser, t.proxyPass = c[0], c[1]
	}
	t.proxyUsage, t.proxyList, t.bypassList = j.proxyUsage, j.proxyList, j.bypassList
}

// transferCtx is what one run needs while it moves bytes.
type transferCtx struct {
	p          *Provider
	j          *job
	r          *run
	user, pass string
	watch      *watchdog

	proxyUsage            bitsprov.ProxyUsage
	proxyList, bypassList string
	proxyUser, proxyPass  string
}

// progress records a file's bytes; it returns false once the run is stale.
func (t *transferCtx) progress(i int, transferred, total uint64, completed bool) bool {
	if t.watch != nil {
		t.watch.kick()
	}
	return t.p.current(t.j, t.r, func() {
		f := t.j.files[i]
		// The modification time moves when bytes move, as BITS' does
		// ("last modified or data was transferred").
		if transferred > f.transferred || completed {
			t.j.progressAt = t.p.now()
			t.j.modified = t.j.progressAt
		}
		f.transferred, f.total, f.completed = transferred, total, completed
		if t.j.state == bitsprov.StateConnecting {
			t.j.state = bitsprov.StateTransferring
			t.j.modified = t.p.now()
		}
	})
}

// download fetches one file into its temp file, resuming a partial temp
// file with a Range request.
func (t *transferCtx) download(i int, f file) *jobError {
	if f.path == "" {
		return &jobError{context: bitsprov.ContextLocalFile, code: ePathNotFound}
	}
	var offset int64
	if st, err := os.Stat(f.tmp); err == nil && f.transferred > 0 && uint64(st.Size()) >= f.transferred {
		offset = int64(f.transferred)
	}
	ctx, proxyAuth := t.withProxy(t.r.ctx, f.remoteURL)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.remoteURL, nil)
	if err != nil {
		return &jobError{context: bitsprov.ContextRemoteFile, code: eInvalidArg}
	}
	if proxyAuth != "" {
		req.Header.Set("Proxy-Authorization", proxyAuth)
	}
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	if t.user != "" {
		req.SetBasicAuth(t.user, t.pass)
	}
	resp, err := t.p.client.Do(req)
	if err != nil {
		return netError(err)
	}
	defer resp.Body.Close()
	var total int64
	switch resp.StatusCode {
	case http.StatusOK:
		if resp.ContentLength < 0 {
			return &jobError{context: bitsprov.ContextRemoteFile, code: bgEMissingFileSize}
		}
		offset, total = 0, resp.ContentLength
	case http.StatusPartialContent:
		var start, end int64
		if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &start, &end, &total); err != nil || start != offset || end != total-1 {
			return &jobError{context: bitsprov.ContextRemoteFile, code: bgEInsufficientRange}
		}
	case http.StatusRequestedRangeNotSatisfiable:
		if offset > 0 && uint64(offset) == f.total {
			t.progress(i, f.total, f.total, true)
			return nil
		}
		if offset > 0 {
			// The remote file shrank below what we have: start over.
			resp.Body.Close()
			f.transferred, f.total = 0, sizeUnknown
			if !t.progress(i, 0, sizeUnknown, false) {
				return nil
			}
			return t.download(i, f)
		}
		return httpError(resp.StatusCode)
	default:
		return httpError(resp.StatusCode)
	}
	if offset > 0 && f.total != sizeUnknown && uint64(total) != f.total {
		// The remote file changed size under a resumed download: the
		// partial data is worthless, start over with a plain GET.
		resp.Body.Close()
		f.transferred, f.total = 0, uint64(total)
		if !t.progress(i, 0, f.total, false) {
			return nil
		}
		return t.download(i, f)
	}
	out, err := os.OpenFile(f.tmp, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return &jobError{context: bitsprov.ContextLocalFile, code: localFileCode(err)}
	}
	defer out.Close()
	if err := out.Truncate(offset); err != nil {
		return &jobError{context: bitsprov.ContextLocalFile, code: localFileCode(err)}
	}
	if _, err := out.Seek(offset, io.SeekStart); err != nil {
		return &jobError{context: bitsprov.ContextLocalFile, code: localFileCode(err)}
	}
	done := offset
	if !t.progress(i, uint64(done), uint64(total), false) {
		return nil
	}
	buf := make([]byte, 32<<10)
	for done < total {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := out.Write(buf[:n]); werr != nil {
				return &jobError{context: bitsprov.ContextLocalFile, code: localFileCode(werr)}
			}
			done += int64(n)
			if !t.progress(i, uint64(done), uint64(total), false) {
				return nil
			}
		}
		if rerr != nil {
			if done >= total {
				break
			}
			if t.r.ctx.Err() != nil {
				return &jobError{context: bitsprov.ContextGeneralTransport, code: winhttpTimeout, transient: true}
			}
			// A body cut short is a dropped connection: retried later
			// from where it stopped.
			return &jobError{context: bitsprov.ContextGeneralTransport, code: winhttpConnectionError, transient: true}
		}
	}
	if err := out.Sync(); err != nil {
		return &jobError{context: bitsprov.ContextLocalFile, code: localFileCode(err)}
	}
	t.progress(i, uint64(done), uint64(total), true)
	return nil
}

// httpError maps an HTTP status to BG_E_HTTP_ERROR_xxx: server-side and
// throttling statuses are transient (retried), client errors permanent.
func httpError(status int) *jobError {
	e := &jobError{context: bitsprov.ContextRemoteFile, code: bgEHTTPErrorBase | uint32(status)}
	switch {
	case status >= 500, status == http.StatusRequestTimeout, status == http.StatusTooManyRequests:
		e.transient = true
	}
	return e
}

// netError maps a failed connection to the WinHTTP error Windows reports;
// all are transient.
func netError(err error) *jobError {
	e := &jobError{context: bitsprov.ContextGeneralTransport, transient: true, code: winhttpConnectionError}
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.As(err, &dnsErr):
		e.code = winhttpNameNotResolved
	case errors.Is(err, syscall.ECONNREFUSED):
		e.code = winhttpCannotConnect
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		e.code = winhttpTimeout
	case errors.As(err, &opErr) && opErr.Op == "dial":
		e.code = winhttpCannotConnect
	}
	return e
}

// watchdog cancels a run when no progress has been made for d.
type watchdog struct {
	kicks chan struct{}
	stop  chan struct{}
	done  chan struct{}
	hit   chan struct{}
}

func newWatchdog(ctx context.Context, clock Clock, d time.Duration, cancel context.CancelFunc) *watchdog {
	w := &watchdog{kicks: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), hit: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.kicks:
			case <-clock.After(d):
				close(w.hit)
				cancel()
				return
			case <-w.stop:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return w
}

func (w *watchdog) kick() {
	select {
	case w.kicks <- struct{}{}:
	default:
	}
}

func (w *watchdog) fired() bool {
	select {
	case <-w.hit:
		return true
	default:
		return false
	}
}

func (w *watchdog) close() {
	close(w.stop)
	<-w.done
}

// parseHexCode reads an HRESULT header value ("0x80190194").
func parseHexCode(s string) (uint32, bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	v, err := strconv.ParseUint(s, 16, 32)
	return uint32(v), err == nil && s != ""
}

package fleet

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bitsremote/bitsremote/bitsprov"
)

// Board draws one progress line per host on a terminal, redrawn in place
// at most every Interval: how many of the host's jobs are done, the
// busiest state, and bytes moved. Hosts still working come first; when
// there are more hosts than Height-1 lines, the rest are summed up in a
// last line. Use it only when the output is a terminal.
type Board struct {
	w io.Writer
	// Height is the terminal's height in lines (0: 25).
	Height int
	// Width is the terminal's width; longer lines are cut (0: 100).
	Width int
	// Interval is the least time between redraws (0: 200 ms).
	Interval time.Duration
	now      func() time.Time

	mu    sync.Mutex
	logs  []string
	order []string
	rows  map[string]*boardRow
	drawn int
	last  time.Time
}

type boardRow struct {
	jobs    map[int]*bitsprov.Job
	done    map[int]Step
	total   int
	hostErr string
	started bool
}

// NewBoard returns a board for hosts, each following jobsPerHost jobs.
func NewBoard(w io.Writer, hosts []string, jobsPerHost int) *Board {
	b := &Board{w: w, rows: map[string]*boardRow{}, now: time.Now}
	for _, h := range hosts {
		b.order = append(b.order, h)
		b.rows[h] = &boardRow{jobs: map[int]*bitsprov.Job{}, done: map[int]Step{}, total: jobsPerHost}
	}
	return b
}

func (b *Board) row(host string) *boardRow {
	r := b.rows[host]
	if r == nil {
		r = &boardRow{jobs: map[int]*bitsprov.Job{}, done: map[int]Step{}}
		b.rows[host] = r
		b.order = append(b.order, host)
	}
	return r
}

// Update records a job's latest state (a Transfer's OnProgress).
func (b *Board) Update(host string, index int, j *bitsprov.Job) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.row(host)
	r.started = true
	cp := *j
	r.jobs[index] = &cp
	b.drawLocked(false)
}

// JobDone records a job's result (a Transfer's OnJob).
func (b *Board) JobDone(res JobResult) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.row(res.Host)
	r.started = true
	step := res.Step
	if res.Err != nil && !step.Final() {
		step = StepFailed
	}
	r.done[res.Index] = step
	if res.Job != nil {
		cp := *res.Job
		r.jobs[res.Index] = &cp
	}
	b.drawLocked(false)
}

// HostDone records a host's own failure (it could not be reached).
func (b *Board) HostDone(res Result) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.row(res.Host)
	r.started = true
	if res.Err != nil {
		r.hostErr = res.Err.Error()
	}
	b.drawLocked(false)
}

// Log prints a message above the board (a warning, an error) and redraws
// the board below it, so that messages and progress lines do not
// overwrite each other.
func (b *Board) Log(msg string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.logs = append(b.logs, strings.Split(strings.TrimRight(msg, "\n"), "\n")...)
	b.drawLocked(true)
}

// Close draws the final state.
func (b *Board) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.drawLocked(true)
}

func (r *boardRow) finished() bool {
	return r.hostErr != "" || (r.total > 0 && len(r.done) >= r.total)
}

// line renders one host's progress.
func (r *boardRow) line(host string) string {
	if r.hostErr != "" {
		return fmt.Sprintf("%-22s failed: %s", host, r.hostErr)
	}
	if !r.started {
		return fmt.Sprintf("%-22s waiting", host)
	}
	var done, transferred, total uint64
	known := true
	states := map[bitsprov.State]int{}
	for i, j := range r.jobs {
		transferred += j.BytesTransferred
		if j.BytesTotal == nil {
			known = false
		} else {
			total += *j.BytesTotal
		}
		if _, ok := r.done[i]; !ok {
			states[j.State]++
		}
	}
	failed := 0
	for _, s := range r.done {
		if s == StepAcknowledged {
			done++
		} else {
			failed++
		}
	}
	n := r.total
	if n == 0 {
		n = max(len(r.jobs), len(r.done))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-22s %d/%d done", host, done, n)
	if failed > 0 {
		fmt.Fprintf(&b, ", %d failed", failed)
	}
	if len(states) > 0 {
		keys := make([]bitsprov.State, 0, len(states))
		for s := range states {
			keys = append(keys, s)
		}
		sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
		var parts []string
		for _, s := range keys {
			parts = append(parts, fmt.Sprintf("%d %v", states[s], s))
		}
		fmt.Fprintf(&b, "  (%s)", strings.Join(parts, ", "))
	}
	switch {
	case known && total > 0:
		fmt.Fprintf(&b, "  %s/%s %3d%%", humanBytes(transferred), humanBytes(total), int(float64(transferred)*100/float64(total)))
	case transferred > 0:
		fmt.Fprintf(&b, "  %s", humanBytes(transferred))
	}
	return b.String()
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func (b *Board) drawLocked(force bool) {
	interval := b.Interval
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	now := b.now()
	if !force && now.Sub(b.last) < interval {
		return
	}
	b.last = now
	height, width := b.Height, b.Width
	if height <= 0 {
		height = 25
	}
	if width <= 0 {
		width = 100
	}
	// Hosts at work first, then those not started, then finished ones,
	// each group in inventory order; on the final draw, inventory order.
	hosts := append([]string(nil), b.order...)
	if !force {
		rank := func(h string) int {
			r := b.rows[h]
			switch {
			case r.finished():
				return 2
			case r.started:
				return 0
			}
			return 1
		}
		sort.SliceStable(hosts, func(i, j int) bool { return rank(hosts[i]) < rank(hosts[j]) })
	}
	room := height - 1
	if force {
		room = len(hosts)
	}
	var lines []string
	for i, h := range hosts {
		if i == room-1 && len(hosts) > room {
			fin, run := 0, 0
			for _, hh := range hosts[i:] {
				if b.rows[hh].finished() {
					fin++
				} else {
					run++
				}
			}
			lines = append(lines, fmt.Sprintf("… and %d more hosts (%d finished, %d to go)", len(hosts)-i, fin, run))
			break
		}
		lines = append(lines, b.rows[h].line(h))
	}
	var sb strings.Builder
	if b.drawn > 0 {
		fmt.Fprintf(&sb, "\x1b[%dA", b.drawn)
	}
	// Messages take the place of the old board; the board moves down.
	for _, l := range b.logs {
		sb.WriteString("\r\x1b[2K")
		sb.WriteString(l)
		sb.WriteByte('\n')
	}
	cleared := max(b.drawn-len(b.logs), 0)
	b.logs = nil
	for _, l := range lines {
		if r := []rune(l); len(r) > width-1 {
			l = string(r[:width-1])
		}
		sb.WriteString("\r\x1b[2K")
		sb.WriteString(l)
		sb.WriteByte('\n')
	}
	// Clear lines left over from a taller previous draw.
	for i := len(lines); i < cleared; i++ {
		sb.WriteString("\r\x1b[2K\n")
	}
	if extra := cleared - len(lines); extra > 0 {
		fmt.Fprintf(&sb, "\x1b[%dA", extra)
	}
	b.drawn = len(lines)
	_, _ = io.WriteString(b.w, sb.String())
}

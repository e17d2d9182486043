package cli

import (
	"fmt"
	"strings"
	"sync"

	"github.com/bitsremote/bitsremote/bitsprov"
)

// progress draws one status line per job on stderr, redrawn in place. It
// is used only when stderr is a terminal; otherwise every method is a
// no-op, so logs and pipes never see carriage returns.
type progress struct {
	io      *IOStreams
	enabled bool

	mu    sync.Mutex
	keys  []string
	lines map[string]string
	drawn int
}

func newProgress(s *IOStreams) *progress {
	return &progress{io: s, enabled: s.StderrTTY, lines: map[string]string{}}
}

// update sets the line for key (host and job) and redraws.
func (p *progress) update(key string, j *bitsprov.Job) {
	if !p.enabled || j == nil {
		return
	}
	line := fmt.Sprintf("%s  %-14s %s  files %d/%d", key, j.State, progressBar(j.BytesTransferred, j.BytesTotal, 20),
		j.FilesTransferred, j.FilesTotal)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.lines[key]; !ok {
		p.keys = append(p.keys, key)
	}
	p.lines[key] = line
	p.redraw()
}

// redraw moves the cursor up over the lines drawn before and rewrites all.
func (p *progress) redraw() {
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn)
	}
	for _, k := range p.keys {
		b.WriteString("\r\x1b[2K")
		b.WriteString(p.lines[k])
		b.WriteByte('\n')
	}
	p.drawn = len(p.keys)
	p.io.mu.Lock()
	fmt.Fprint(p.io.ErrOut, b.String())
	p.io.mu.Unlock()
}

// progressBar renders "[#####.....]  45% 1.2 MiB/2.6 MiB", or a byte count
// alone while the size is unknown.
func progressBar(done uint64, total *uint64, width int) string {
	if total == nil || *total == 0 {
		return fmt.Sprintf("[%s] %s", strings.Repeat("?", width), humanBytes(done))
	}
	frac := float64(done) / float64(*total)
	if frac > 1 {
		frac = 1
	}
	n := int(frac * float64(width))
	return fmt.Sprintf("[%s%s] %3d%% %s/%s", strings.Repeat("#", n), strings.Repeat(".", width-n), int(frac*100),
		humanBytes(done), humanBytes(*total))
}

package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// Exchange is one recorded request and what came back: a Response, or the
// text of a transport error.
type Exchange struct {
	// Request.URL has hostPlaceholder for its host:port; Request.Body is the
	// envelope as sent, with secrets redacted.
	Request  Request
	Response *Response
	Err      string
}

// LoadExchanges reads the recording dir/name written by a Recorder.
func LoadExchanges(dir, name string) ([]Exchange, error) {
	if err := checkFixtureName(name); err != nil {
		return nil, err
	}
	d := filepath.Join(dir, name)
	files, err := exchangeFiles(d)
	if err != nil {
		return nil, fmt.Errorf("load recording %s: %w", name, err)
	}
	var metas []string
	for _, f := range files {
		if strings.HasSuffix(f, ".json") {
			metas = append(metas, strings.TrimSuffix(f, ".json"))
		}
	}
	sort.Slice(metas, func(i, j int) bool {
		if len(metas[i]) != len(metas[j]) {
			return len(metas[i]) < len(metas[j])
		}
		return metas[i] < metas[j]
	})
	if len(metas) == 0 {
		return nil, fmt.Errorf("load recording %s: no exchanges in %s", name, d)
	}
	out := make([]Exchange, 0, len(metas))
	for i, n := range metas {
		if want := fmt.Sprintf("%03d", i+1); n != want {
			return nil, fmt.Errorf("load recording %s: exchange %s is missing (found %s)", name, want, n)
		}
		ex, err := loadExchange(filepath.Join(d, n))
		if err != nil {
			return nil, fmt.Errorf("load recording %s: exchange %s: %w", name, n, err)
		}
		out = append(out, ex)
	}
	return out, nil
}

func loadExchange(base string) (Exchange, error) {
	js, err := os.ReadFile(base + ".json")
	if err != nil {
		return Exchange{}, err
	}
	var meta exchangeMeta
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&meta); err != nil {
		return Exchange{}, fmt.Errorf("%s.json: %w", filepath.Base(base), err)
	}
	if meta.Request.URL == "" {
		return Exchange{}, fmt.Errorf("%s.json: request.url is missing", filepath.Base(base))
	}
	if (meta.Response == nil) == (meta.Error == "") {
		return Exchange{}, fmt.Errorf("%s.json: want exactly one of response and error", filepath.Base(base))
	}
	reqBody, err := os.ReadFile(base + ".request.xml")
	if err != nil {
		return Exchange{}, err
	}
	if meta.Request.Indented {
		reqBody = compactXML(reqBody)
	}
	ex := Exchange{
		Request: Request{URL: meta.Request.URL, Body: reqBody, Header: meta.Request.Header, Anonymous: meta.Request.Anonymous},
		Err:     meta.Error,
	}
	if m := meta.Response; m != nil {
		body, err := os.ReadFile(base + ".response.xml")
		if err != nil {
			return Exchange{}, err
		}
		if m.Indented {
			body = compactXML(body)
		}
		h := m.Header.Clone()
		if h == nil {
			h = http.Header{}
		}
		if m.ContentType != "" {
			h.Set("Content-Type", m.ContentType)
		}
		ex.Response = &Response{StatusCode: m.Status, Header: h, ContentType: m.ContentType, Body: body, Encrypted: m.Encrypted}
	}
	return ex, nil
}

// Replayer is a Transport that answers from a recording, in order, and
// fails when a request differs from the recorded one in anything but its
// MessageID and the host:port of its URL and wsa:To.
type Replayer struct {
	name     string
	ex       []Exchange
	scrub    *Recorder // reuses the recorder's redaction rules
	mu       sync.Mutex
	next     int
	mismatch error
}

// NewReplayer loads the recording dir/name. secrets are the strings the
// recorder was told to redact, so that a request carrying the real password
// still matches.
func NewReplayer(dir, name string, secrets ...string) (*Replayer, error) {
	ex, err := LoadExchanges(dir, name)
	if err != nil {
		return nil, err
	}
	var s []string
	for _, v := range secrets {
		if v != "" {
			s = append(s, v)
		}
	}
	return &Replayer{name: name, ex: ex, scrub: &Recorder{secrets: s}}, nil
}

// Confidential is true: a replay sends nothing over any network.
func (r *Replayer) Confidential(string) bool { return true }

// RoundTrip checks req against the next recorded request and returns the
// recorded reply, with its wsa:RelatesTo set to req's MessageID when it
// answered the recorded MessageID.
func (r *Replayer) RoundTrip(ctx context.Context, req *Request) (*Response, error) {
	if req == nil {
		return nil, errors.New("nil request")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("replay %s: %w", r.name, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.next >= len(r.ex) {
		return nil, fmt.Errorf("replay %s: request %d is beyond the %d recorded", r.name, r.next+1, len(r.ex))
	}
	n := r.next + 1
	ex := r.ex[r.next]
	want := r.describe(&ex.Request, true)
	got := r.describe(req, false)
	if want != got {
		err := fmt.Errorf("replay %s: request %03d differs from the recording (-recorded +sent):\n%s",
			r.name, n, lineDiff(want, got))
		if r.mismatch == nil {
			r.mismatch = err
		}
		return nil, err
	}
	r.next++
	if ex.Err != "" {
		return nil, fmt.Errorf("replay %s: exchange %03d: recorded error: %s", r.name, n, ex.Err)
	}
	resp := *ex.Response
	resp.Header = ex.Response.Header.Clone()
	resp.Body = bytes.Clone(ex.Response.Body)
	recID, okRec := leafText(ex.Request.Body, nsAddressing, "MessageID")
	newID, okNew := leafText(req.Body, nsAddressing, "MessageID")
	if okRec && okNew {
		resp.Body = rewriteLeaves(resp.Body, func(ns, local, text string) (string, bool) {
			if ns == nsAddressing && local == "RelatesTo" && text == recID {
				return newID, true
			}
			return "", false
		})
	}
	return &resp, nil
}

// Remaining is the number of recorded exchanges not replayed yet.
func (r *Replayer) Remaining() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ex) - r.next
}

// Verify reports a request that did not match, or recorded exchanges that
// were never requested. Call it at the end of a test.
func (r *Replayer) Verify() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mismatch != nil {
		return r.mismatch
	}
	if r.next < len(r.ex) {
		return fmt.Errorf("replay %s: %d of %d recorded exchanges were not requested", r.name, len(r.ex)-r.next, len(r.ex))
	}
	return nil
}

// describe renders a request as the lines compared on replay: URL,
// anonymity, extra headers, then the envelope one tag per line, with the
// parts that legitimately change replaced by placeholders.
func (r *Replayer) describe(req *Request, recorded bool) string {
	var b strings.Builder
	url, body, header := req.URL, req.Body, req.Header
	if !recorded {
		url = replaceHost(url)
		body = r.scrub.scrub(normalizeEnvelope(body))
		header = r.scrub.scrubHeader(header, nil)
	}
	fmt.Fprintf(&b, "POST %s\n", url)
	if req.Anonymous {
		b.WriteString("(anonymous)\n")
	}
	keys := make([]string, 0, len(header))
	for k := range header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range header[k] {
			fmt.Fprintf(&b, "%s: %s\n", http.CanonicalHeaderKey(k), v)
		}
	}
	b.WriteString("\n")
	body = rewriteLeaves(body, func(ns, local, _ string) (string, bool) {
		return "{MessageID}", ns == nsAddressing && local == "MessageID"
	})
	ind, _ := indentXML(body)
	b.Write(ind)
	return b.String()
}

// lineDiff is a minimal line diff (longest common subsequence) for
// envelopes of a few hundred lines: changed lines with their line numbers
// and up to two lines of context.
func lineDiff(a, b string) string {
	x := strings.Split(strings.TrimSuffix(a, "\n"), "\n")
	y := strings.Split(strings.TrimSuffix(b, "\n"), "\n")
	// lcs[i][j] is the LCS length of x[i:] and y[j:].
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type line struct {
		op   byte
		text string
		n    int // line number in a (for ' ' and '-') or b (for '+')
	}
	var ls []line
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			ls = append(ls, line{' ', x[i], i + 1})
			i++
			j++
		case i < len(x) && (j == len(y) || lcs[i+1][j] >= lcs[i][j+1]):
			ls = append(ls, line{'-', x[i], i + 1})
			i++
		default:
			ls = append(ls, line{'+', y[j], j + 1})
			j++
		}
	}
	const context = 2
	var out strings.Builder
	lastShown := -1
	for k, l := range ls {
		near := false
		for d := -context; d <= context; d++ {
			if k+d >= 0 && k+d < len(ls) && ls[k+d].op != ' ' {
				near = true
				break
			}
		}
		if !near {
			continue
		}
		if lastShown >= 0 && k > lastShown+1 {
			out.WriteString("   ...\n")
		}
		fmt.Fprintf(&out, "%c%4d %s\n", l.op, l.n, l.text)
		lastShown = k
	}
	return out.String()
}

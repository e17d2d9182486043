package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Fixture layout. Each exchange of a recording named name is three files
// under dir/name, numbered from 001 in the order the replies arrived:
//
//	001.json           what is not an envelope: URL, headers, status, error
//	001.request.xml    the request envelope, one tag per line
//	001.response.xml   the reply body, one tag per line when it is XML
//
// Envelopes are indented only when indenting is exactly reversible (see
// indentXML), so replay returns the bytes that were received; the .json
// says so with "indented". The host:port of every URL and wsa:To is
// replaced by hostPlaceholder because test servers listen on random ports.
// Credentials never reach the files: Authorization headers are dropped,
// elements named like *Password* are blanked and every configured secret is
// replaced by redacted wherever it appears.
const (
	hostPlaceholder = "{host}"
	redacted        = "REDACTED"
)

// exchangeMeta is the .json file of one exchange.
type exchangeMeta struct {
	Request  requestMeta   `json:"request"`
	Response *responseMeta `json:"response,omitempty"`
	// Error is the transport error instead of a reply (a drop, a timeout).
	Error string `json:"error,omitempty"`
}

type requestMeta struct {
	URL       string      `json:"url"`
	Anonymous bool        `json:"anonymous,omitempty"`
	Header    http.Header `json:"header,omitempty"`
	Indented  bool        `json:"indented"`
}

type responseMeta struct {
	Status      int         `json:"status"`
	ContentType string      `json:"contentType,omitempty"`
	Header      http.Header `json:"header,omitempty"`
	Encrypted   bool        `json:"encrypted,omitempty"`
	Indented    bool        `json:"indented"`
}

// Recorder is a Transport that passes requests to another one and writes
// each exchange under a fixtures directory for NewReplayer.
type Recorder struct {
	next    Transport
	dir     string
	secrets []string

	mu  sync.Mutex
	seq int
	err error
}

// NewRecorder records the exchanges that pass through next into
// dir/name (normally fixtures/soap/<name>), replacing any earlier recording
// of that name. secrets are strings (the password) to remove from
// everything written, in addition to Authorization headers and elements
// named like *Password*.
func NewRecorder(next Transport, dir, name string, secrets ...string) (*Recorder, error) {
	if next == nil {
		return nil, errors.New("recorder: nil transport")
	}
	if err := checkFixtureName(name); err != nil {
		return nil, err
	}
	d := filepath.Join(dir, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	old, err := exchangeFiles(d)
	if err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	for _, f := range old {
		if err := os.Remove(filepath.Join(d, f)); err != nil {
			return nil, fmt.Errorf("recorder: remove the old recording: %w", err)
		}
	}
	var s []string
	for _, v := range secrets {
		if v != "" {
			s = append(s, v)
		}
	}
	return &Recorder{next: next, dir: d, secrets: s}, nil
}

// Confidential asks the recorded transport.
func (r *Recorder) Confidential(endpoint string) bool {
	ok, _ := IsConfidential(r.next, endpoint)
	return ok
}

// RoundTrip sends req through the wrapped transport and records the
// exchange. A failure to write the fixture is returned as an error, after
// the exchange itself, so a test cannot silently record nothing.
func (r *Recorder) RoundTrip(ctx context.Context, req *Request) (*Response, error) {
	if req == nil {
		return nil, errors.New("nil request")
	}
	resp, err := r.next.RoundTrip(ctx, req)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	if werr := r.write(r.seq, req, resp, err); werr != nil {
		werr = fmt.Errorf("record exchange %03d in %s: %w", r.seq, r.dir, werr)
		if r.err == nil {
			r.err = werr
		}
		if err == nil {
			return nil, werr
		}
	}
	return resp, err
}

// Err reports the first failure to write a fixture.
func (r *Recorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// CloseIdleConnections passes through to the wrapped transport.
func (r *Recorder) CloseIdleConnections() {
	if c, ok := r.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (r *Recorder) write(n int, req *Request, resp *Response, rtErr error) error {
	meta := exchangeMeta{}
	reqBody := r.scrub(normalizeEnvelope(req.Body))
	// Fixed message IDs keep a re-recording from changing every file; the
	// replayer ignores MessageID anyway and maps RelatesTo back.
	sentID, _ := leafText(req.Body, nsAddressing, "MessageID")
	reqID := fmt.Sprintf("uuid:00000000-0000-4000-8000-%012d", n)
	replyID := fmt.Sprintf("uuid:00000000-0000-4000-9000-%012d", n)
	reqBody = rewriteLeaves(reqBody, func(ns, local, _ string) (string, bool) {
		return reqID, sentID != "" && ns == nsAddressing && local == "MessageID"
	})
	reqXML, ok := indentXML(reqBody)
	meta.Request = requestMeta{
		URL:       replaceHost(req.URL),
		Anonymous: req.Anonymous,
		Header:    r.scrubHeader(req.Header, nil),
		Indented:  ok,
	}
	var respXML []byte
	if rtErr != nil {
		meta.Error = r.scrubString(rtErr.Error())
	} else {
		body := rewriteLeaves(r.scrub(resp.Body), func(ns, local, text string) (string, bool) {
			switch {
			case ns != nsAddressing || sentID == "":
				return "", false
			case local == "RelatesTo" && text == sentID:
				return reqID, true
			case local == "MessageID":
				return replyID, true
			}
			return "", false
		})
		var ok bool
		respXML, ok = indentXML(body)
		meta.Response = &responseMeta{
			Status:      resp.StatusCode,
			ContentType: resp.ContentType,
			Header:      r.scrubHeader(resp.Header, dropResponseHeaders),
			Encrypted:   resp.Encrypted,
			Indented:    ok,
		}
	}
	js, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return err
	}
	base := filepath.Join(r.dir, fmt.Sprintf("%03d", n))
	if err := os.WriteFile(base+".json", append(js, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(base+".request.xml", reqXML, 0o644); err != nil {
		return err
	}
	if meta.Response != nil {
		return os.WriteFile(base+".response.xml", respXML, 0o644)
	}
	return nil
}

// dropResponseHeaders change on every run or carry connection state, and
// would make every re-recording a diff.
var dropResponseHeaders = map[string]bool{
	"Date": true, "Content-Length": true, "Content-Type": true, "Connection": true,
	"Keep-Alive": true, "Set-Cookie": true, "Www-Authenticate": true,
}

// secretHeaders never reach a fixture.
var secretHeaders = map[string]bool{
	"Authorization": true, "Proxy-Authorization": true, "Cookie": true, "Set-Cookie": true,
}

func (r *Recorder) scrubHeader(h http.Header, drop map[string]bool) http.Header {
	var out http.Header
	for k, vs := range h {
		ck := http.CanonicalHeaderKey(k)
		if secretHeaders[ck] || drop[ck] {
			continue
		}
		if out == nil {
			out = http.Header{}
		}
		for _, v := range vs {
			out[ck] = append(out[ck], r.scrubString(v))
		}
	}
	return out
}

func (r *Recorder) scrubString(s string) string {
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, redacted)
	}
	return s
}

// scrub removes the configured secrets, raw and XML-escaped, and the
// content of password elements.
func (r *Recorder) scrub(b []byte) []byte {
	for _, sec := range r.secrets {
		b = bytes.ReplaceAll(b, []byte(sec), []byte(redacted))
		var esc bytes.Buffer
		_ = xml.EscapeText(&esc, []byte(sec))
		if esc.String() != sec {
			b = bytes.ReplaceAll(b, esc.Bytes(), []byte(redacted))
		}
	}
	return redactPasswords(b)
}

// redactPasswords blanks every text-only element whose name ends in
// "password" (BITS SetCredentials sends one). Names that only contain it,
// such as Win32_ComputerSystem's AdminPasswordStatus, are kept.
func redactPasswords(b []byte) []byte {
	return rewriteLeaves(b, func(_, local, text string) (string, bool) {
		if text == "" || !strings.HasSuffix(strings.ToLower(local), "password") {
			return "", false
		}
		return redacted, true
	})
}

// normalizeEnvelope replaces the host:port of wsa:To, the only part of a
// request that changes with the test server's port.
func normalizeEnvelope(b []byte) []byte {
	return rewriteLeaves(b, func(ns, local, text string) (string, bool) {
		if ns != nsAddressing || local != "To" {
			return "", false
		}
		return replaceHost(text), true
	})
}

// replaceHost puts hostPlaceholder in place of the host:port of an
// absolute http(s) URL.
func replaceHost(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return s
	}
	i := strings.Index(s, "://") + len("://")
	rest := s[i:]
	j := strings.IndexAny(rest, "/?#")
	if j < 0 {
		j = len(rest)
	}
	return s[:i] + hostPlaceholder + rest[j:]
}

var fixtureNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$`)

// checkFixtureName keeps a recording inside its directory.
func checkFixtureName(name string) error {
	if !fixtureNameRE.MatchString(name) || strings.Contains(name, "..") {
		return fmt.Errorf("recording name %q: use letters, digits, '.', '_', '-' and '/' only", name)
	}
	return nil
}

var exchangeFileRE = regexp.MustCompile(`^([0-9]{3,})\.(json|request\.xml|response\.xml)$`)

// exchangeFiles lists the exchange files in d, sorted.
func exchangeFiles(d string) ([]string, error) {
	ents, err := os.ReadDir(d)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() && exchangeFileRE.MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

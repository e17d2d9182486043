package wsmantest

import (
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/bitsremote/bitsremote/wsman"
)

// InjectKind is a failure the server can inject.
type InjectKind int

// Injectable failures. Every kind may be combined with Injection.Delay.
const (
	// InjectDelay only waits Delay before handling the request normally.
	InjectDelay InjectKind = iota + 1
	// InjectDrop closes the connection without a reply (after Delay).
	InjectDrop
	// InjectTruncate sends the status line, the headers with the full
	// Content-Length and only part of the body, then closes the connection.
	InjectTruncate
	// InjectGarble flips bytes of the reply body (sealed bytes under
	// encryption), keeping its length.
	InjectGarble
	// InjectStatus replies Status with Body, ContentType and RetryAfter
	// instead of the real reply, unsealed, as a proxy or HTTP.sys would
	// (a 502 page, a 503 with or without Retry-After).
	InjectStatus
	// InjectFault replies HTTP 500 with Fault, rendered like any fault.
	InjectFault
	// InjectRewrite passes the plaintext reply envelope through Rewrite
	// before it is sealed and sent (e.g. to break RelatesTo).
	InjectRewrite
)

var injectNames = map[InjectKind]string{
	InjectDelay: "delay", InjectDrop: "drop", InjectTruncate: "truncate", InjectGarble: "garble",
	InjectStatus: "status", InjectFault: "fault", InjectRewrite: "rewrite",
}

// String names the kind as the request log does ("drop", "status", …).
func (k InjectKind) String() string {
	if n, ok := injectNames[k]; ok {
		return n
	}
	return "inject?"
}

// Injection describes one injected failure. Only requests that reach the
// SOAP handler count (authentication legs and priming POSTs do not).
type Injection struct {
	Kind InjectKind
	// Action restricts the injection to requests with this wsa:Action
	// ("Identify" for Identify); "" matches every request.
	Action string
	// Delay is waited before anything else.
	Delay time.Duration
	// Status, Body, ContentType and RetryAfter are the InjectStatus reply.
	Status      int
	Body        string
	ContentType string
	RetryAfter  string
	// Fault is the InjectFault reply.
	Fault *wsman.Fault
	// Rewrite changes the plaintext reply for InjectRewrite.
	Rewrite func([]byte) []byte
	// TruncateAt is how many body bytes InjectTruncate sends (0: half).
	TruncateAt int
}

type injectRule struct {
	inj       Injection
	remaining int        // for Inject
	fraction  float64    // for InjectRandom
	rng       *rand.Rand // for InjectRandom
}

type injector struct {
	mu    sync.Mutex
	rules []*injectRule
}

// Inject applies in to the next n matching requests.
func (s *Server) Inject(in Injection, n int) {
	s.inject.mu.Lock()
	s.inject.rules = append(s.inject.rules, &injectRule{inj: in, remaining: n})
	s.inject.mu.Unlock()
}

// InjectRandom applies in to each matching request with probability
// fraction, drawn from a generator seeded with seed so runs repeat.
func (s *Server) InjectRandom(in Injection, fraction float64, seed uint64) {
	s.inject.mu.Lock()
	s.inject.rules = append(s.inject.rules, &injectRule{inj: in, fraction: fraction, rng: rand.New(rand.NewPCG(seed, seed^0x9E3779B97F4A7C15))})
	s.inject.mu.Unlock()
}

// ClearInjections removes every pending injection.
func (s *Server) ClearInjections() {
	s.inject.mu.Lock()
	s.inject.rules = nil
	s.inject.mu.Unlock()
}

func (i *injector) take(action string) *Injection {
	i.mu.Lock()
	defer i.mu.Unlock()
	for k, r := range i.rules {
		if r.inj.Action != "" && r.inj.Action != action {
			continue
		}
		if r.rng != nil {
			if r.rng.Float64() < r.fraction {
				in := r.inj
				return &in
			}
			continue
		}
		if r.remaining > 0 {
			r.remaining--
			in := r.inj
			if r.remaining == 0 {
				i.rules = append(i.rules[:k], i.rules[k+1:]...)
			}
			return &in
		}
	}
	return nil
}

// applyPre runs an injection due for this request. It reports whether the
// request is finished (nothing more to do for the SOAP handler).
func (s *Server) applyPre(w http.ResponseWriter, r *http.Request, rec *record, action, relatesTo string) bool {
	in := s.inject.take(action)
	if in == nil {
		return false
	}
	rec.entry.Injected = in.Kind.String()
	if in.Delay > 0 {
		t := time.NewTimer(in.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			rec.effect = &Injection{Kind: InjectDrop}
			return true
		}
	}
	switch in.Kind {
	case InjectDrop, InjectStatus:
		rec.effect = in
		return true
	case InjectFault:
		f := in.Fault
		if f == nil {
			f = FaultInternalError("Injected fault. ", 0x80004005)
		}
		s.writeFault(w, r, rec, f, &parsed{messageID: relatesTo})
		return true
	case InjectTruncate, InjectGarble, InjectRewrite:
		rec.effect = in
	}
	return false
}

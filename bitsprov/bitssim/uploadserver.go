package bitssim

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// UploadServer is the server side of the BITS upload protocol on loopback,
// like an IIS virtual directory with BITS uploads enabled: it accepts
// Ping, Create-Session, Fragment, Close-Session and Cancel-Session packets
// and stores each upload under its directory at the URL's path once the
// session is closed.
type UploadServer struct {
	*httptest.Server
	dir string

	mu       sync.Mutex
	sessions map[string]*uploadSession
	packets  []Packet
}

// Packet is one request the upload server received, for tests to inspect.
type Packet struct {
	Type         string // BITS-Packet-Type
	SessionID    string
	Path         string
	ContentRange string
	Length       int64
}

type uploadSession struct {
	path     string // URL path
	tmp      string
	received uint64
}

// NewUploadServer starts an upload server storing files under dir. Close
// it when done.
func NewUploadServer(dir string) *UploadServer {
	s := newUploadServer(dir)
	s.Start()
	return s
}

// newUploadServer is NewUploadServer not yet started.
func newUploadServer(dir string) *UploadServer {
	s := &UploadServer{dir: dir, sessions: map[string]*uploadSession{}}
	s.Server = httptest.NewUnstartedServer(s)
	return s
}

// Packets returns the packets received so far.
func (s *UploadServer) Packets() []Packet {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Packet(nil), s.packets...)
}

// ack answers a packet. BITS-Error-Code and BITS-Error-Context report a
// failure (Ack for Fragment page).
func ack(w http.ResponseWriter, session string, status int, code uint32, hdr ...string) {
	h := w.Header()
	h.Set("BITS-Packet-Type", "Ack")
	if session != "" {
		h.Set("BITS-Session-Id", session)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		h.Set(hdr[i], hdr[i+1])
	}
	if code != 0 {
		h.Set("BITS-Error-Code", fmt.Sprintf("0x%x", code))
		h.Set("BITS-Error-Context", "0x5")
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(status)
}

// ServeHTTP implements the server side of the protocol.
func (s *UploadServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != methodBITSPost {
		http.Error(w, "BITS uploads only", http.StatusMethodNotAllowed)
		return
	}
	typ := r.Header.Get("BITS-Packet-Type")
	sid := r.Header.Get("BITS-Session-Id")
	s.mu.Lock()
	defer s.mu.Unlock()
	s.packets = append(s.packets, Packet{Type: typ, SessionID: sid, Path: r.URL.Path,
		ContentRange: r.Header.Get("Content-Range"), Length: r.ContentLength})
	switch strings.ToLower(typ) {
	case "ping":
		ack(w, "", http.StatusOK, 0)
	case "create-session":
		if !strings.Contains(strings.ToLower(r.Header.Get("BITS-Supported-Protocols")), ProtocolBITS15) {
			ack(w, "", http.StatusBadRequest, bgEProtocolMismatch)
			return
		}
		f, err := os.CreateTemp(s.dir, "BITS-upload-*.tmp")
		if err != nil {
			ack(w, "", http.StatusInternalServerError, localFileCode(err))
			return
		}
		f.Close()
		id := newGUID()
		s.sessions[id] = &uploadSession{path: r.URL.Path, tmp: f.Name()}
		ack(w, id, http.StatusOK, 0, "BITS-Protocol", ProtocolBITS15, "Accept-Encoding", "Identity")
	case "fragment":
		s.fragment(w, r, sid)
	case "close-session":
		sess := s.sessions[sid]
		if sess == nil {
			ack(w, sid, http.StatusBadRequest, eInvalidArg)
			return
		}
		dest := uploadDest(s.dir, sess.path)
		if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
			ack(w, sid, http.StatusInternalServerError, localFileCode(err))
			return
		}
		if err := os.Rename(sess.tmp, dest); err != nil {
			ack(w, sid, http.StatusInternalServerError, localFileCode(err))
			return
		}
		delete(s.sessions, sid)
		ack(w, sid, http.StatusOK, 0)
	case "cancel-session":
		if sess := s.sessions[sid]; sess != nil {
			_ = os.Remove(sess.tmp)
			delete(s.sessions, sid)
		}
		ack(w, sid, http.StatusOK, 0)
	default:
		ack(w, sid, http.StatusBadRequest, eInvalidArg)
	}
}

// fragment appends a fragment. Fragments must be contiguous; overlapping
// bytes already received are skipped, a gap is answered with 416 and the
// offset the server expects (Fragment and Ack for Fragment pages).
func (s *UploadServer) fragment(w http.ResponseWriter, r *http.Request, sid string) {
	sess := s.sessions[sid]
	if sess == nil {
		ack(w, sid, http.StatusBadRequest, eInvalidArg)
		return
	}
	var start, end, total uint64
	if _, err := fmt.Sscanf(strings.ToLower(r.Header.Get("Content-Range")), "bytes %d-%d/%d", &start, &end, &total); err != nil ||
		end < start || end >= total || int64(end-start+1) != r.ContentLength {
		ack(w, sid, http.StatusBadRequest, eInvalidArg)
		return
	}
	next := strconv.FormatUint(sess.received, 10)
	if start > sess.received {
		ack(w, sid, http.StatusRequestedRangeNotSatisfiable, 0, "BITS-Received-Content-Range", next)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, r.ContentLength))
	if err != nil || int64(len(body)) != r.ContentLength {
		ack(w, sid, http.StatusBadRequest, eInvalidArg, "BITS-Received-Content-Range", next)
		return
	}
	if end >= sess.received {
		f, err := os.OpenFile(sess.tmp, os.O_WRONLY, 0)
		if err != nil {
			ack(w, sid, http.StatusInternalServerError, localFileCode(err))
			return
		}
		_, werr := f.WriteAt(body[sess.received-start:], int64(sess.received))
		cerr := f.Close()
		if werr != nil || cerr != nil {
			ack(w, sid, http.StatusInternalServerError, eFail)
			return
		}
		sess.received = end + 1
	}
	ack(w, sid, http.StatusOK, 0, "BITS-Received-Content-Range", strconv.FormatUint(sess.received, 10))
}

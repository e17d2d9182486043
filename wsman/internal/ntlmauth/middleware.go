package ntlmauth

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/bitsremote/bitsremote/wsman/internal/encframe"
)

// MiddlewareOptions tunes Middleware.
type MiddlewareOptions struct {
	// RequireEncryption answers unencrypted SOAP bodies as Windows does
	// with AllowUnencrypted=false.
	RequireEncryption bool
	// MaxRequestBytes bounds a request body (0: 16 MiB).
	MaxRequestBytes int64
}

type connKey struct{}

type userKey struct{}

type encryptedKey struct{}

// connState is the NTLM state of one TCP connection. HTTP/1.1 serves one
// request at a time per connection, but the mutex keeps HTTP/2 (several
// streams on one connection) correct and race-free as well.
type connState struct {
	mu   sync.Mutex
	conn *Conn
	auth bool
}

// ConnContext must be installed as the http.Server's ConnContext: it gives
// each TCP connection its own NTLM state, as HTTP.sys binds an NTLM context
// to the connection it was negotiated on.
func (s *Server) ConnContext(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, &connState{conn: s.NewConn()})
}

// UserFromContext returns the user an inner handler's request was
// authenticated as.
func UserFromContext(ctx context.Context) (string, bool) {
	u, ok := ctx.Value(userKey{}).(string)
	return u, ok
}

// EncryptedFromContext reports whether the inner handler's request arrived
// sealed (its reply will be sealed too).
func EncryptedFromContext(ctx context.Context) bool {
	e, _ := ctx.Value(encryptedKey{}).(bool)
	return e
}

// Middleware puts NTLM authentication (raw NTLMSSP in the Negotiate
// scheme, as WinRM clients send it) and MS-WSMV message encryption in
// front of next:
//
//   - an unauthenticated connection without Authorization gets 401 with
//     WWW-Authenticate: Negotiate;
//   - Authorization: Negotiate <NEGOTIATE> gets 401 with the CHALLENGE;
//   - Authorization: Negotiate <AUTHENTICATE> is verified: bad credentials
//     get 401; good ones with an empty body get 200 (the priming POST that
//     pywinrm requires to be 2xx); good ones with a body go on to next;
//   - later requests on the connection need no Authorization;
//   - a multipart/encrypted body is unsealed; next sees the plaintext and
//     its reply, whatever its status, is sealed in the same framing.
//
// The http.Server must have ConnContext set to s.ConnContext.
func (s *Server) Middleware(next http.Handler, opts MiddlewareOptions) http.Handler {
	limit := opts.MaxRequestBytes
	if limit <= 0 {
		limit = 16 << 20
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, ok := r.Context().Value(connKey{}).(*connState)
		if !ok {
			http.Error(w, "ntlmauth: http.Server.ConnContext is not set to Server.ConnContext", http.StatusInternalServerError)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
		if err != nil {
			http.Error(w, "read request body", http.StatusBadRequest)
			return
		}
		if int64(len(body)) > limit {
			// Windows answers 413 to requests above MaxEnvelopeSizekb.
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}

		st.mu.Lock()
		defer st.mu.Unlock()

		if h := r.Header.Get("Authorization"); h != "" {
			scheme, token, _ := strings.Cut(h, " ")
			msg, err := base64.StdEncoding.DecodeString(strings.TrimSpace(token))
			if (!strings.EqualFold(scheme, "Negotiate") && !strings.EqualFold(scheme, "NTLM")) || err != nil || len(msg) < 12 {
				st.auth = false
				challenge(w, "Negotiate")
				return
			}
			switch msg[8] {
			case 1:
				st.auth = false
				ch, err := st.conn.Challenge(msg)
				if err != nil {
					challenge(w, "Negotiate")
					return
				}
				challenge(w, scheme+" "+base64.StdEncoding.EncodeToString(ch))
				return
			case 3:
				if err := st.conn.Authenticate(msg); err != nil {
					st.auth = false
					challenge(w, "Negotiate")
					return
				}
				st.auth = true
				if len(body) == 0 {
					w.WriteHeader(http.StatusOK)
					return
				}
			default:
				st.auth = false
				challenge(w, "Negotiate")
				return
			}
		}
		if !st.auth {
			challenge(w, "Negotiate")
			return
		}

		ctx := context.WithValue(r.Context(), userKey{}, st.conn.User())
		sess := st.conn.Session()
		if encframe.IsEncrypted(r.Header.Get("Content-Type")) {
			if sess == nil || !sess.Sealed() {
				// The client negotiated no confidentiality yet sends sealed
				// data; there is nothing to unseal it with.
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			plain, ctype, err := encframe.Unwrap(body, sess.Unwrap)
			if err != nil {
				// Windows' answer to a forged, replayed or garbled sealed
				// message is not documented and no capture shows it. We
				// answer 400 (a broken message, not a SOAP fault, so not
				// the 500 every fault uses) with an empty body, and close
				// the connection: its sealed stream can no longer be
				// trusted, and a fresh connection forces the client to
				// authenticate again, which is the recovery every client
				// implements.
				w.Header().Set("Connection", "close")
				w.WriteHeader(http.StatusBadRequest)
				st.auth = false
				return
			}
			r2 := r.Clone(context.WithValue(ctx, encryptedKey{}, true))
			r2.Body = io.NopCloser(bytes.NewReader(plain))
			r2.ContentLength = int64(len(plain))
			r2.Header.Set("Content-Type", ctype)
			r2.Header.Del("Authorization")
			rec := &recorder{header: http.Header{}}
			next.ServeHTTP(rec, r2)
			writeSealed(w, rec, sess)
			return
		}

		if opts.RequireEncryption && len(body) > 0 {
			// AllowUnencrypted=false: Windows rejects an unsealed SOAP body
			// on an NTLM-authenticated HTTP connection with HTTP 500 and an
			// empty body (pywinrm #129 and #208, nxtests'
			// _handle_500_http_error; wsman-wire.md §2.1 and §4.1). The one
			// report of 401 (packer #6205) used Basic auth, which Windows
			// refuses at the authentication stage over HTTP when
			// unencrypted traffic is disallowed; that case never reaches
			// this point, since only NTLM is accepted here.
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		r2 := r.Clone(context.WithValue(ctx, encryptedKey{}, false))
		r2.Body = io.NopCloser(bytes.NewReader(body))
		r2.ContentLength = int64(len(body))
		r2.Header.Del("Authorization")
		next.ServeHTTP(w, r2)
	})
}

func challenge(w http.ResponseWriter, value string) {
	w.Header().Set("WWW-Authenticate", value)
	w.WriteHeader(http.StatusUnauthorized)
}

// writeSealed seals the recorded reply of the inner handler. An empty body
// has nothing to protect and goes out as it is.
func writeSealed(w http.ResponseWriter, rec *recorder, sess *Session) {
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	if rec.body.Len() == 0 {
		w.WriteHeader(status)
		return
	}
	ctype := rec.header.Get("Content-Type")
	if ctype == "" {
		ctype = encframe.SOAPType
	}
	framed, _ := encframe.Wrap(rec.body.Bytes(), ctype, func(p []byte) ([]byte, []byte, error) {
		sealed, sig := sess.Wrap(p)
		return sealed, sig, nil
	})
	w.Header().Set("Content-Type", encframe.ContentType)
	w.Header().Del("Content-Length")
	w.Header().Set("Content-Length", strconv.Itoa(len(framed)))
	w.WriteHeader(status)
	_, _ = w.Write(framed)
}

// recorder buffers the inner handler's reply so it can be sealed whole.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

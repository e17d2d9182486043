package wsmantest

import (
	"context"
	"net"
	"net/http"
	"strings"

	"github.com/bitsremote/bitsremote/wsman/internal/ntlmauth"
)

// newNTLM builds the acceptor with the configured accounts.
func (s *Server) newNTLM() {
	users := map[string]string{}
	for k, v := range s.cfg.Users {
		if i := strings.LastIndexByte(k, '\\'); i >= 0 {
			k = k[i+1:]
		}
		users[strings.ToLower(k)] = v
	}
	s.ntlmSrv = &ntlmauth.Server{Domain: s.cfg.Domain, Computer: strings.ToUpper(s.cfg.Machine), Users: users}
}

// ntlmHandler puts the NTLM acceptor (and MS-WSMV sealing) in front of
// next. Over TLS unsealed traffic is fine, as on a WinRM HTTPS listener.
func (s *Server) ntlmHandler(next http.Handler, tls bool) http.Handler {
	return s.ntlmSrv.Middleware(next, ntlmauth.MiddlewareOptions{
		RequireEncryption: s.cfg.RequireEncryption && !tls,
		// The envelope limit applies to the plaintext (checked by
		// serveSOAP); leave room for the sealing frame.
		MaxRequestBytes: int64(s.cfg.MaxEnvelopeSizeKB)*1024 + 4096,
	})
}

func (s *Server) ntlmConnContext(ctx context.Context, c net.Conn) context.Context {
	if s.ntlmSrv == nil {
		return ctx
	}
	return s.ntlmSrv.ConnContext(ctx, c)
}

func (s *Server) ntlmUser(r *http.Request) string {
	u, _ := ntlmauth.UserFromContext(r.Context())
	return u
}

func (s *Server) ntlmEncrypted(r *http.Request) bool {
	return ntlmauth.EncryptedFromContext(r.Context())
}

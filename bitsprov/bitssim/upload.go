package bitssim

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"

	"github.com/bitsremote/bitsremote/bitsprov"
)

// BITS upload protocol (learn.microsoft.com "BITS Upload Protocol"):
// every packet is an HTTP request with the verb BITS_POST.
const (
	methodBITSPost = "BITS_POST"
	// ProtocolBITS15 is the BITS 1.5 upload protocol, the only one the
	// BITS client offers in BITS-Supported-Protocols.
	ProtocolBITS15 = "{7df0354d-249b-430f-820d-3d2a9bef4931}"
)

// uploadError is a failed upload packet.
type uploadError = jobError

// uploadPacket sends a packet without a body (Ping, Create-Session,
// Close-Session, Cancel-Session) and checks its Ack.
func (t *transferCtx) uploadPacket(ctx context.Context, remoteURL, session, typ string) *uploadError {
	ctx, auth := t.packetCtx(ctx, remoteURL)
	_, err := t.p.sendPacket(ctx, remoteURL, session, typ, nil, "", auth)
	return err
}

// packetAuth is the credentials a transfer puts on upload packets.
type packetAuth struct {
	user, pass string
	proxyAuth  string
}

// packetCtx prepares the context and credentials of a run's upload packets.
func (t *transferCtx) packetCtx(ctx context.Context, target string) (context.Context, *packetAuth) {
	ctx, proxyAuth := t.withProxy(ctx, target)
	return ctx, &packetAuth{user: t.user, pass: t.pass, proxyAuth: proxyAuth}
}

// sendPacket sends one BITS_POST and returns the Ack's headers.
func (p *Provider) sendPacket(ctx context.Context, remoteURL, session, typ string, body []byte, contentRange string, auth *packetAuth) (http.Header, *uploadError) {
	req, err := http.NewRequestWithContext(ctx, methodBITSPost, remoteURL, bytes.NewReader(body))
	if err != nil {
		return nil, &jobError{context: bitsprov.ContextRemoteFile, code: eInvalidArg}
	}
	req.Header.Set("BITS-Packet-Type", typ)
	if session != "" {
		req.Header.Set("BITS-Session-Id", session)
	}
	if typ == "Create-Session" {
		req.Header.Set("BITS-Supported-Protocols", ProtocolBITS15)
	}
	if contentRange != "" {
		req.Header.Set("Content-Range", contentRange)
	}
	req.ContentLength = int64(len(body))
	if auth != nil && auth.user != "" {
		req.SetBasicAuth(auth.user, auth.pass)
	}
	if auth != nil && auth.proxyAuth != "" {
		req.Header.Set("Proxy-Authorization", auth.proxyAuth)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, netError(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if code, ok := parseHexCode(resp.Header.Get("BITS-Error-Code")); ok && code != 0 {
		e := &jobError{context: bitsprov.ContextRemoteFile, code: code, transient: resp.StatusCode >= 500}
		if c, ok := parseHexCode(resp.Header.Get("BITS-Error-Context")); ok && bitsprov.ErrorContext(c).Valid() {
			e.context = bitsprov.ErrorContext(c)
		}
		return resp.Header, e
	}
	if resp.StatusCode != http.StatusOK {
		return resp.Header, httpError(resp.StatusCode)
	}
	if resp.Header.Get("BITS-Packet-Type") != "Ack" {
		return resp.Header, &jobError{context: bitsprov.ContextRemoteFile, code: winhttpInvalidServerResp}
	}
	return resp.Header, nil
}

// upload sends one file with the BITS upload protocol: Ping, then
// Create-Session (once per job; the session survives retries), then
// Fragments in order, each acknowledged with the next offset the server
// wants (BITS-Received-Content-Range). Close-Session is sent by Complete.
func (t *transferCtx) upload(i int, f file) *jobError {
	if f.path == "" {
		return &jobError{context: bitsprov.ContextLocalFile, code: ePathNotFound}
	}
	src, err := os.Open(f.path)
	if err != nil {
		code := localFileCode(err)
		if code == ePathNotFound {
			code = eFileNotFound
		}
		return &jobError{context: bitsprov.ContextLocalFile, code: code}
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return &jobError{context: bitsprov.ContextLocalFile, code: localFileCode(err)}
	}
	size := uint64(st.Size())
	if f.total != sizeUnknown && f.total != size {
		return &jobError{context: bitsprov.ContextLocalFile, code: bgELocalFileChanged}
	}
	ctx, auth := t.packetCtx(t.r.ctx, f.remoteURL)
	if _, e := t.p.sendPacket(ctx, f.remoteURL, "", "Ping", nil, "", auth); e != nil {
		return e
	}
	var session string
	t.p.current(t.j, t.r, func() { session = t.j.session })
	offset := f.transferred
	if session == "" {
		h, e := t.p.sendPacket(ctx, f.remoteURL, "", "Create-Session", nil, "", auth)
		if e != nil {
			return e
		}
		if h.Get("BITS-Protocol") != ProtocolBITS15 || h.Get("BITS-Session-Id") == "" {
			return &jobError{context: bitsprov.ContextRemoteFile, code: bgEProtocolMismatch}
		}
		session = h.Get("BITS-Session-Id")
		offset = 0
		if !t.p.current(t.j, t.r, func() { t.j.session = session }) {
			return nil
		}
	}
	if !t.progress(i, offset, size, false) {
		return nil
	}
	buf := make([]byte, t.p.cfg.FragmentSize)
	for offset < size {
		n, err := src.ReadAt(buf[:min(uint64(len(buf)), size-offset)], int64(offset))
		if err != nil && err != io.EOF {
			return &jobError{context: bitsprov.ContextLocalFile, code: localFileCode(err)}
		}
		if n == 0 {
			return &jobError{context: bitsprov.ContextLocalFile, code: bgELocalFileChanged}
		}
		cr := fmt.Sprintf("bytes %d-%d/%d", offset, offset+uint64(n)-1, size)
		h, e := t.p.sendPacket(ctx, f.remoteURL, session, "Fragment", buf[:n], cr, auth)
		if e != nil {
			// A 416 carries the offset the server has: continue from it.
			if next, perr := strconv.ParseUint(h.Get("BITS-Received-Content-Range"), 10, 64); e.code == bgEHTTPErrorBase|416 && perr == nil && next <= size {
				offset = next
				continue
			}
			return e
		}
		next, perr := strconv.ParseUint(h.Get("BITS-Received-Content-Range"), 10, 64)
		if perr != nil || next > size {
			return &jobError{context: bitsprov.ContextRemoteFile, code: winhttpInvalidServerResp}
		}
		offset = next
		if !t.progress(i, offset, size, false) {
			return nil
		}
	}
	t.progress(i, size, size, true)
	return nil
}

// uploadDest is where the upload server stores the file for a URL path.
func uploadDest(dir, urlPath string) string {
	return filepath.Join(dir, filepath.FromSlash(filepath.Clean("/"+urlPath)))
}

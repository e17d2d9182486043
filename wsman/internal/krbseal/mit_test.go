package krbseal

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/asn1tools"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/iana"
	"github.com/jcmturner/gokrb5/v8/iana/asnAppTag"
	"github.com/jcmturner/gokrb5/v8/iana/flags"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/iana/msgtype"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/spnego"
	"github.com/jcmturner/gokrb5/v8/types"

	"github.com/bitsremote/bitsremote/internal/krbtest"
	"github.com/bitsremote/bitsremote/internal/pywinrmtest"
)

// mitPeer is MIT's GSSAPI (python3-gssapi over libgssapi-krb5) holding
// one security context in a long-running process: the other side of our
// Session, independent of gokrb5 and of this package.
type mitPeer struct {
	in     io.WriteCloser
	out    *bufio.Scanner
	stderr *bytes.Buffer
}

// mitScript answers one JSON request per line. Byte fields are base64,
// as encoding/json writes []byte.
const mitScript = `
import base64, json, sys
import gssapi
import gssapi.raw as gr
from gssapi.raw import IOV, IOVBufferType as T

ctx = None
def dec(s): return base64.b64decode(s or "")
def enc(b): return base64.b64encode(b or b"").decode()
for line in sys.stdin:
    req = json.loads(line)
    op = req["op"]
    try:
        if op == "accept":
            ctx = gssapi.SecurityContext(usage="accept")
            out = ctx.step(dec(req["token"]))
            res = {"complete": ctx.complete, "out": enc(out), "mech": ctx.mech.dotted_form}
        elif op == "init":
            f = gssapi.RequirementFlag
            ctx = gssapi.SecurityContext(
                name=gssapi.Name(req["name"], gssapi.NameType.kerberos_principal),
                usage="initiate", mech=gssapi.MechType.kerberos,
                flags=f.mutual_authentication | f.confidentiality | f.integrity)
            res = {"out": enc(ctx.step())}
        elif op == "step":
            out = ctx.step(dec(req["token"]))
            res = {"complete": ctx.complete, "out": enc(out)}
        elif op == "wrap_iov":
            iov = IOV(T.header, dec(req["data"]), T.padding, std_layout=False)
            conf = gr.wrap_iov(ctx, iov, confidential=True)
            res = {"header": enc(iov[0].value), "data": enc(iov[1].value), "padding": enc(iov[2].value), "conf": conf}
        elif op == "wrap":
            r = gr.wrap(ctx, dec(req["data"]), True)
            res = {"token": enc(r.message), "conf": r.encrypted}
        elif op == "unwrap_iov":
            iov = IOV((T.header, False, dec(req["header"])), (T.data, False, dec(req["data"])), std_layout=False)
            r = gr.unwrap_iov(ctx, iov)
            res = {"data": enc(iov[1].value), "conf": r.encrypted}
        elif op == "unwrap":
            r = gr.unwrap(ctx, dec(req["token"]))
            res = {"data": enc(r.message), "conf": r.encrypted}
        else:
            res = {"error": "unknown op " + op}
    except gssapi.exceptions.GSSError as e:
        res = {"error": str(e)}
    print(json.dumps(res), flush=True)
`

type mitReq struct {
	Op     string `json:"op"`
	Token  []byte `json:"token,omitempty"`
	Data   []byte `json:"data,omitempty"`
	Header []byte `json:"header,omitempty"`
	Name   string `json:"name,omitempty"`
}

type mitResp struct {
	Error    string `json:"error"`
	Complete bool   `json:"complete"`
	Conf     bool   `json:"conf"`
	Mech     string `json:"mech"`
	Out      []byte `json:"out"`
	Token    []byte `json:"token"`
	Data     []byte `json:"data"`
	Header   []byte `json:"header"`
	Padding  []byte `json:"padding"`
}

// startMIT runs the script with env, skipping the test where
// python3-gssapi is missing unless interop is required.
func startMIT(t *testing.T, env []string) *mitPeer {
	t.Helper()
	if out, err := exec.Command(pywinrmtest.Python, "-c", "import gssapi.raw; gssapi.raw.wrap_iov").CombinedOutput(); err != nil {
		if os.Getenv(pywinrmtest.RequireEnv) == "1" {
			t.Fatalf("python3-gssapi with IOV: %v: %s", err, out)
		}
		t.Skipf("python3-gssapi with IOV: %v: %s", err, out)
	}
	cmd := exec.Command(pywinrmtest.Python, "-c", mitScript)
	cmd.Env = env
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &mitPeer{in: in, stderr: &bytes.Buffer{}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close() // the script ends at the end of its input
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("python: %v: %s", err, p.stderr)
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("python did not end with its input")
		}
	})
	p.out = bufio.NewScanner(out)
	p.out.Buffer(nil, 16<<20)
	return p
}

// do sends one request and returns the answer; GSS errors come back in
// Error.
func (p *mitPeer) do(t *testing.T, req mitReq) mitResp {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.in.Write(append(b, '\n')); err != nil {
		t.Fatalf("%s: %v: %s", req.Op, err, p.stderr)
	}
	if !p.out.Scan() {
		t.Fatalf("%s: no answer: %v: %s", req.Op, p.out.Err(), p.stderr)
	}
	var resp mitResp
	if err := json.Unmarshal(p.out.Bytes(), &resp); err != nil {
		t.Fatalf("%s: %v: %s", req.Op, err, p.out.Bytes())
	}
	return resp
}

// must is do for a request that must succeed.
func (p *mitPeer) must(t *testing.T, req mitReq) mitResp {
	t.Helper()
	resp := p.do(t, req)
	if resp.Error != "" {
		t.Fatalf("MIT %s: %s", req.Op, resp.Error)
	}
	return resp
}

// goInitiator logs in with gokrb5 and makes the AP-REQ the transport
// makes (newAPReqToken: mutual authentication, integrity and
// confidentiality asked) in an SPNEGO NegTokenInit, and returns it with
// the session key and the authenticator sent.
func goInitiator(t *testing.T, r *krbtest.Realm, spn string) ([]byte, types.EncryptionKey, types.Authenticator) {
	t.Helper()
	cl := r.Login(t)
	tkt, key, err := cl.GetServiceTicket(spn)
	if err != nil {
		t.Fatal(err)
	}
	mt, err := spnego.NewKRB5TokenAPREQ(cl, tkt, key,
		[]int{gssapi.ContextFlagInteg, gssapi.ContextFlagConf, gssapi.ContextFlagMutual},
		[]int{flags.APOptionMutualRequired})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := crypto.DecryptEncPart(mt.APReq.EncryptedAuthenticator, key, keyusage.AP_REQ_AUTHENTICATOR)
	if err != nil {
		t.Fatal(err)
	}
	var auth types.Authenticator
	if err := auth.Unmarshal(plain); err != nil {
		t.Fatal(err)
	}
	mtb, err := mt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	st := spnego.SPNEGOToken{Init: true, NegTokenInit: spnego.NegTokenInit{MechTypes: []asn1.ObjectIdentifier{gssapi.OIDKRB5.OID()}, MechTokenBytes: mtb}}
	b, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b, key, auth
}

// readAPRep returns the decrypted AP-REP in an acceptor's answer: an
// SPNEGO NegTokenResp or a bare krb5 token.
func readAPRep(t *testing.T, tok []byte, key types.EncryptionKey) messages.EncAPRepPart {
	t.Helper()
	if len(tok) > 0 && tok[0] == 0xa1 {
		var st spnego.SPNEGOToken
		if err := st.Unmarshal(tok); err != nil || !st.Resp {
			t.Fatalf("not a NegTokenResp: %v", err)
		}
		tok = st.NegTokenResp.ResponseToken
	}
	var kt spnego.KRB5Token
	if err := kt.Unmarshal(tok); err != nil || !kt.IsAPRep() {
		t.Fatalf("no AP-REP: %v", err)
	}
	plain, err := crypto.DecryptEncPart(kt.APRep.EncPart, key, keyusage.AP_REP_ENCPART)
	if err != nil {
		t.Fatal(err)
	}
	var rep messages.EncAPRepPart
	if err := rep.Unmarshal(plain); err != nil {
		t.Fatal(err)
	}
	return rep
}

var mitMessages = [][]byte{
	[]byte(`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body/></s:Envelope>`),
	[]byte("x"),
	bytes.Repeat([]byte("0123456789abcdef"), 2),
	bytes.Repeat([]byte("<p:State>2</p:State>"), 120),
	[]byte("sixteen bytes!!!"),
}

// TestMITAcceptor establishes a context between gokrb5 (our AP-REQ, as
// the transport sends it) and MIT's acceptor, whose AP-REP gives
// NewInitiator its keys, and exchanges sealed messages both ways:
//   - ours unseal in MIT's gss_unwrap_iov with a HEADER of our
//     signature and a DATA of the sealed bytes (the buffers SSPI's
//     DecryptMessage gets from WinRM), and in plain gss_unwrap of the
//     whole token;
//   - MIT's gss_wrap_iov with HEADER, DATA and PADDING (what pyspnego's
//     wrap_winrm, used by pypsrp and pywinrm, calls) makes EC 0, RRC 28
//     and a 60-byte header, our layout exactly, and unseals here; so
//     does plain gss_wrap's token (RRC 0).
func TestMITAcceptor(t *testing.T) {
	r := krbtest.Start(t)
	kt := r.AddService(t, "HTTP/localhost")
	mit := startMIT(t, append(r.Env(), "KRB5_KTNAME=FILE:"+kt))
	tok, key, auth := goInitiator(t, r, "HTTP/localhost")
	acc := mit.must(t, mitReq{Op: "accept", Token: tok})
	if !acc.Complete || acc.Mech != "1.2.840.113554.1.2.2" {
		t.Fatalf("MIT's context: complete %v, mech %s", acc.Complete, acc.Mech)
	}
	rep := readAPRep(t, acc.Out, key)
	// MIT's AES acceptor sends a subkey of the ticket's etype and a
	// sequence number, as Windows' does.
	if rep.Subkey.KeyType != key.KeyType || len(rep.Subkey.KeyValue) != 32 {
		t.Fatalf("MIT's acceptor subkey: etype %d, %d bytes; the session key's etype is %d", rep.Subkey.KeyType, len(rep.Subkey.KeyValue), key.KeyType)
	}
	sess, err := NewInitiator(key, auth, rep)
	if err != nil {
		t.Fatal(err)
	}
	recvSeq := uint64(uint32(rep.SequenceNumber))

	t.Run("Go to MIT", func(t *testing.T) {
		for i, msg := range mitMessages {
			sig, data := seal(t, sess, msg)
			if len(sig) != 60 {
				t.Fatalf("signature of %d bytes", len(sig))
			}
			var got mitResp
			if i%2 == 0 {
				got = mit.must(t, mitReq{Op: "unwrap_iov", Header: sig, Data: data})
			} else {
				got = mit.must(t, mitReq{Op: "unwrap", Token: append(sig, data...)})
			}
			if !got.Conf || !bytes.Equal(got.Data, msg) {
				t.Errorf("message %d: MIT unsealed %q (confidential %v), want %q", i, got.Data, got.Conf, msg)
			}
		}
	})

	t.Run("MIT to Go", func(t *testing.T) {
		for i, msg := range mitMessages {
			var sig, data []byte
			if i%2 == 0 {
				w := mit.must(t, mitReq{Op: "wrap_iov", Data: msg})
				if len(w.Padding) != 0 {
					t.Errorf("message %d: MIT's IOV padding is %d bytes, want none (AES)", i, len(w.Padding))
				}
				sig, data = w.Header, w.Data
				// EC 0, RRC 28, as Windows sends; flags: sent by the
				// acceptor, sealed, acceptor subkey.
				want := binary.BigEndian.AppendUint64([]byte{5, 4, 7, 0xff, 0, 0, 0, 28}, recvSeq)
				if len(sig) != 60 || !bytes.Equal(sig[:16], want) {
					t.Errorf("message %d: MIT's IOV header is %d bytes beginning % x, want 60 beginning % x", i, len(sig), sig[:min(16, len(sig))], want)
				}
			} else {
				w := mit.must(t, mitReq{Op: "wrap", Data: msg})
				want := binary.BigEndian.AppendUint64([]byte{5, 4, 7, 0xff, 0, 0, 0, 0}, recvSeq)
				if !bytes.Equal(w.Token[:16], want) {
					t.Errorf("message %d: MIT's gss_wrap header % x, want % x", i, w.Token[:16], want)
				}
				sig, data = split(w.Token, len(msg))
			}
			got, err := unseal(sess, sig, data)
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			if diff := cmp.Diff(msg, got); diff != "" {
				t.Errorf("message %d (-want +got):\n%s", i, diff)
			}
			recvSeq++
		}
	})

	t.Run("sequence and tampering", func(t *testing.T) {
		w1 := mit.must(t, mitReq{Op: "wrap_iov", Data: []byte("one")})
		w2 := mit.must(t, mitReq{Op: "wrap_iov", Data: []byte("two")})
		wantSeq := func(got, want uint64) string {
			return fmt.Sprintf("kerberos wrap token: unexpected sequence number (replayed, reordered or lost): got %d, want %d", got, want)
		}
		if _, err := unseal(sess, w2.Header, w2.Data); err == nil || err.Error() != wantSeq(recvSeq+1, recvSeq) {
			t.Errorf("reordered: %v", err)
		}
		bad := append([]byte(nil), w1.Data...)
		bad[1] ^= 0x20
		if _, err := unseal(sess, w1.Header, bad); !errors.Is(err, ErrIntegrity) {
			t.Errorf("tampered: %v", err)
		}
		for _, w := range []mitResp{w1, w2} {
			if _, err := unseal(sess, w.Header, w.Data); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := unseal(sess, w2.Header, w2.Data); err == nil || err.Error() != wantSeq(recvSeq+1, recvSeq+2) {
			t.Errorf("replayed: %v", err)
		}
		recvSeq += 2
		// Our own token reflected to us is refused; MIT refuses a
		// tampered one of ours.
		sig, data := seal(t, sess, []byte("reflected"))
		if _, err := unseal(sess, sig, data); !errors.Is(err, ErrMalformed) {
			t.Errorf("reflected: %v", err)
		}
		if got := mit.must(t, mitReq{Op: "unwrap_iov", Header: sig, Data: data}); string(got.Data) != "reflected" {
			t.Errorf("MIT unsealed %q", got.Data)
		}
		sig, data = seal(t, sess, []byte("tampered"))
		data[0] ^= 1
		if got := mit.do(t, mitReq{Op: "unwrap_iov", Header: sig, Data: data}); got.Error == "" {
			t.Errorf("MIT unsealed a tampered token: %q", got.Data)
		}
	})

	// Why UnsealInPlace tries RRC alone when RRC+EC fails: with EC
	// filler, MIT (no DCE style, as WinRM's contexts are) rotates by RRC
	// alone, as RFC 4121 says, and refuses a token rotated by RRC+EC, as
	// Windows rotates (MS-KILE 3.4.5.4.1).
	t.Run("EC filler", func(t *testing.T) {
		msg := []byte("with filler")
		rfc := wrapToken(t, rep.Subkey, 24, 0x06, 1, msg, 16, 28, 28)
		if got := mit.must(t, mitReq{Op: "unwrap", Token: rfc}); !bytes.Equal(got.Data, msg) {
			t.Errorf("rotated by RRC: MIT unsealed %q", got.Data)
		}
		windows := wrapToken(t, rep.Subkey, 24, 0x06, 2, msg, 16, 28, 44)
		if got := mit.do(t, mitReq{Op: "unwrap", Token: windows}); !strings.Contains(got.Error, "Decrypt integrity check failed") {
			t.Errorf("rotated by RRC+EC: MIT answered %q %q, want an integrity failure", got.Data, got.Error)
		}
	})
}

// TestMITInitiator: MIT's initiator (kinit's ticket cache, raw krb5
// mechanism, mutual authentication) against NewAcceptor, with an AP-REP
// made here as Windows makes it (acceptor subkey, sequence number).
// MIT's authenticator carries a subkey, which gokrb5's does not.
func TestMITInitiator(t *testing.T) {
	r := krbtest.Start(t)
	ktPath := r.AddService(t, "HTTP/localhost")
	cc := r.Kinit(t, krbtest.User, krbtest.Password)
	mit := startMIT(t, append(r.Env(), "KRB5CCNAME=FILE:"+cc))
	init := mit.must(t, mitReq{Op: "init", Name: "HTTP/localhost@" + r.Name})
	var tok spnego.KRB5Token
	if err := tok.Unmarshal(init.Out); err != nil || !tok.IsAPReq() {
		t.Fatalf("MIT's token: %v", err)
	}
	kt := krbtest.ReadKeytab(t, ktPath)
	if ok, err := tok.APReq.Verify(kt, 5*time.Minute, types.HostAddress{}, nil); !ok || err != nil {
		t.Fatalf("MIT's AP-REQ: %v", err)
	}
	auth := tok.APReq.Authenticator
	key := tok.APReq.Ticket.DecryptedEncPart.Key
	if auth.SubKey.KeyType != key.KeyType {
		t.Errorf("MIT's authenticator subkey: etype %d, want %d", auth.SubKey.KeyType, key.KeyType)
	}
	repTok, rep := apRep(t, &tok.APReq)
	if got := mit.must(t, mitReq{Op: "step", Token: repTok}); !got.Complete {
		t.Fatal("MIT's context is not complete after our AP-REP")
	}
	sess, err := NewAcceptor(key, auth, rep)
	if err != nil {
		t.Fatal(err)
	}
	recvSeq, sendSeq := uint64(uint32(auth.SeqNumber)), uint64(uint32(rep.SequenceNumber))
	for i, msg := range mitMessages {
		var sig, data []byte
		if i%2 == 0 {
			w := mit.must(t, mitReq{Op: "wrap_iov", Data: msg})
			sig, data = w.Header, w.Data
		} else {
			w := mit.must(t, mitReq{Op: "wrap", Data: msg})
			sig, data = split(w.Token, len(msg))
		}
		// Sent by the initiator, sealed, with our acceptor subkey.
		want := binary.BigEndian.AppendUint64([]byte{5, 4, 6, 0xff, 0, 0}, recvSeq+uint64(i))
		if got := append(sig[:6:6], sig[8:16]...); !bytes.Equal(got, want) {
			t.Errorf("message %d: MIT's header % x", i, sig[:16])
		}
		got, err := unseal(sess, sig, data)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if diff := cmp.Diff(msg, got); diff != "" {
			t.Errorf("message %d (-want +got):\n%s", i, diff)
		}
		reply := append([]byte("reply to "), msg...)
		sig, data = seal(t, sess, reply)
		if got := binary.BigEndian.Uint64(sig[8:16]); got != sendSeq+uint64(i) || sig[2] != 7 {
			t.Errorf("reply %d: sequence %d flags %#x, want %d and 0x07", i, got, sig[2], sendSeq+uint64(i))
		}
		var back mitResp
		if i%2 == 0 {
			back = mit.must(t, mitReq{Op: "unwrap_iov", Header: sig, Data: data})
		} else {
			back = mit.must(t, mitReq{Op: "unwrap", Token: append(sig, data...)})
		}
		if !bytes.Equal(back.Data, reply) {
			t.Errorf("reply %d: MIT unsealed %q, want %q", i, back.Data, reply)
		}
	}
}

// apRep makes the GSS krb5 AP-REP token for apreq as Windows' acceptor
// does, with an acceptor subkey of the ticket's etype and a sequence
// number, and returns it with its decrypted part.
func apRep(t *testing.T, apreq *messages.APReq) ([]byte, messages.EncAPRepPart) {
	t.Helper()
	skey := apreq.Ticket.DecryptedEncPart.Key
	var seq [4]byte
	rand.Read(seq[:])
	part := messages.EncAPRepPart{
		CTime:          apreq.Authenticator.CTime.UTC(),
		Cusec:          apreq.Authenticator.Cusec,
		Subkey:         randomKey(t, skey.KeyType),
		SequenceNumber: int64(binary.BigEndian.Uint32(seq[:]) & 0x3fffffff),
	}
	pb, err := asn1.Marshal(part)
	if err != nil {
		t.Fatal(err)
	}
	ed, err := crypto.GetEncryptedData(asn1tools.AddASNAppTag(pb, asnAppTag.EncAPRepPart), skey, keyusage.AP_REP_ENCPART, 0)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := asn1.Marshal(messages.APRep{PVNO: iana.PVNO, MsgType: msgtype.KRB_AP_REP, EncPart: ed})
	if err != nil {
		t.Fatal(err)
	}
	oid, err := asn1.Marshal(gssapi.OIDKRB5.OID())
	if err != nil {
		t.Fatal(err)
	}
	tok := append(oid, 0x02, 0x00)
	tok = append(tok, asn1tools.AddASNAppTag(rb, asnAppTag.APREP)...)
	return asn1tools.AddASNAppTag(tok, 0), part
}

// TestGoAcceptor: a context from a real KDC between gokrb5's initiator
// (no authenticator subkey) and an acceptor that reads the AP-REQ with
// the keytab and answers with an acceptor subkey, as the simulator will:
// NewInitiator and NewAcceptor from the two sides' own views of the keys
// exchange messages both ways.
func TestGoAcceptor(t *testing.T) {
	r := krbtest.Start(t)
	ktPath := r.AddService(t, "HTTP/localhost")
	tok, key, auth := goInitiator(t, r, "HTTP/localhost")
	var st spnego.SPNEGOToken
	if err := st.Unmarshal(tok); err != nil {
		t.Fatal(err)
	}
	var mt spnego.KRB5Token
	if err := mt.Unmarshal(st.NegTokenInit.MechTokenBytes); err != nil {
		t.Fatal(err)
	}
	kt := krbtest.ReadKeytab(t, ktPath)
	if ok, err := mt.APReq.Verify(kt, 5*time.Minute, types.HostAddress{}, nil); !ok || err != nil {
		t.Fatalf("the AP-REQ: %v", err)
	}
	repTok, _ := apRep(t, &mt.APReq)
	acc, err := NewAcceptor(mt.APReq.Ticket.DecryptedEncPart.Key, mt.APReq.Authenticator, readAPRep(t, repTok, mt.APReq.Ticket.DecryptedEncPart.Key))
	if err != nil {
		t.Fatal(err)
	}
	ini, err := NewInitiator(key, auth, readAPRep(t, repTok, key))
	if err != nil {
		t.Fatal(err)
	}
	for i, msg := range mitMessages {
		sig, data := seal(t, ini, msg)
		if got, err := unseal(acc, sig, data); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("request %d: %q %v", i, got, err)
		}
		reply := append([]byte("reply to "), msg...)
		sig, data = seal(t, acc, reply)
		if got, err := unseal(ini, sig, data); err != nil || !bytes.Equal(got, reply) {
			t.Fatalf("reply %d: %q %v", i, got, err)
		}
	}
}

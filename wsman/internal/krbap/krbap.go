// Package krbap builds the Kerberos AP-REP a service sends a client that
// asked for mutual authentication: the simulator's acceptor sends it, and
// the transport's tests answer with it, so both prove the service the
// same way Windows does.
package krbap

import (
	"crypto/rand"
	"encoding/binary"

	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/asn1tools"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/iana"
	"github.com/jcmturner/gokrb5/v8/iana/asnAppTag"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/iana/msgtype"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// Token builds, for an AP-REQ whose ticket and authenticator are
// decrypted, the GSS krb5 token (RFC 1964 §1.1: token id 0x0200) holding
// the KRB_AP_REP (RFC 4120 §5.5.2) that proves the service to a
// client asking for mutual authentication: ctime and cusec from its
// authenticator, an acceptor subkey and sequence number as Windows sends,
// encrypted with the ticket's session key, key usage 12. It returns the
// AP-REP's part too: its subkey and sequence number start the acceptor's
// sealing session (krbseal.NewAcceptor).
func Token(apreq *messages.APReq) ([]byte, messages.EncAPRepPart, error) {
	skey := apreq.Ticket.DecryptedEncPart.Key
	et, err := crypto.GetEtype(skey.KeyType)
	if err != nil {
		return nil, messages.EncAPRepPart{}, err
	}
	sub := make([]byte, et.GetKeyByteSize())
	var seq [4]byte
	if _, err := rand.Read(sub); err != nil {
		return nil, messages.EncAPRepPart{}, err
	}
	if _, err := rand.Read(seq[:]); err != nil {
		return nil, messages.EncAPRepPart{}, err
	}
	part := messages.EncAPRepPart{
		CTime:          apreq.Authenticator.CTime.UTC(),
		Cusec:          apreq.Authenticator.Cusec,
		Subkey:         types.EncryptionKey{KeyType: skey.KeyType, KeyValue: et.RandomToKey(sub)},
		SequenceNumber: int64(binary.BigEndian.Uint32(seq[:]) & 0x3fffffff),
	}
	pb, err := asn1.Marshal(part)
	if err != nil {
		return nil, messages.EncAPRepPart{}, err
	}
	ed, err := crypto.GetEncryptedData(asn1tools.AddASNAppTag(pb, asnAppTag.EncAPRepPart), skey, keyusage.AP_REP_ENCPART, 0)
	if err != nil {
		return nil, messages.EncAPRepPart{}, err
	}
	rb, err := asn1.Marshal(messages.APRep{PVNO: iana.PVNO, MsgType: msgtype.KRB_AP_REP, EncPart: ed})
	if err != nil {
		return nil, messages.EncAPRepPart{}, err
	}
	oid, err := asn1.Marshal(gssapi.OIDKRB5.OID())
	if err != nil {
		return nil, messages.EncAPRepPart{}, err
	}
	tok := append(oid, 0x02, 0x00)
	tok = append(tok, asn1tools.AddASNAppTag(rb, asnAppTag.APREP)...)
	return asn1tools.AddASNAppTag(tok, 0), part, nil
}

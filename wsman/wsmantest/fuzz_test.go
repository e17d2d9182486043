package wsmantest

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"
)

// FuzzParseEnvelope: whatever a client sends, request parsing returns a
// request or a fault, never panics.
func FuzzParseEnvelope(f *testing.F) {
	f.Add([]byte(`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Header><a:Action s:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/09/transfer/Get</a:Action><a:MessageID>uuid:4ED2993C-4339-4E99-81FC-C2FD3812781A</a:MessageID><a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo><w:OperationTimeout>PT-1S</w:OperationTimeout><w:SelectorSet><w:Selector Name="a"><a:EndpointReference><a:Address>x</a:Address></a:EndpointReference></w:Selector></w:SelectorSet></s:Header><s:Body/></s:Envelope>`))
	f.Add([]byte(`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Header/><s:Body><wsmid:Identify xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd"/></s:Body></s:Envelope>`))
	f.Add([]byte(`<x`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, fault := parseEnvelope(data, time.Minute)
		if p == nil {
			t.Fatal("nil parsed")
		}
		if fault != nil && fault.Reason == "" {
			t.Fatalf("fault without reason: %+v", fault)
		}
	})
}

// FuzzParseWQL: any query text parses or fails cleanly.
func FuzzParseWQL(f *testing.F) {
	for _, q := range []string{
		"select * from Win32_Service where State = 'Running'",
		"SELECT Name, State FROM X WHERE A = 1 AND B <> \"x\\\"y\" OR C IS NOT NULL",
		"select * from",
		"select * from X where A >= -1.5",
		"select * from X where NOT (A LIKE '%[^a-c]_' OR 3 < B) AND C IS NULL",
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		got, err := parseWQL(q)
		if err == nil && (got == nil || got.class == "") {
			t.Fatalf("parseWQL(%q) = %+v without error", q, got)
		}
	})
}

// render writes a parsed WHERE clause back with every node bracketed,
// so a test can state the tree it expects.
func (x *wqlExpr) render() string {
	if x == nil {
		return ""
	}
	switch x.op {
	case '!':
		return "NOT " + x.kids[0].render()
	case 'c':
		lit := map[byte]string{'s': "'" + x.cond.lit.text + "'", 'n': x.cond.lit.text, 'b': x.cond.lit.text, '0': "NULL"}[x.cond.lit.kind]
		return x.cond.prop + " " + x.cond.op + " " + lit
	}
	var parts []string
	for _, k := range x.kids {
		parts = append(parts, k.render())
	}
	return "(" + strings.Join(parts, map[byte]string{'|': " OR ", '&': " AND "}[x.op]) + ")"
}

func TestParseWQL(t *testing.T) {
	tests := []struct {
		q       string
		class   string
		props   []string
		where   string
		wantErr bool
	}{
		{q: "select * from Win32_Service", class: "Win32_Service"},
		{q: "SELECT Name,State FROM BitsClientJob WHERE State = 2", class: "BitsClientJob", props: []string{"Name", "State"}, where: "State = 2"},
		{q: "select * from X where A = 1 and B = 2 or C = 3", class: "X", where: "((A = 1 AND B = 2) OR C = 3)"},
		{q: "select * from X where A = 1 and (B = 2 or C = 3)", class: "X", where: "(A = 1 AND (B = 2 OR C = 3))"},
		{q: "select * from X where NOT A = 1 AND NOT (B <> 'x' OR C IS NOT NULL)", class: "X", where: "(NOT A = 1 AND NOT (B != 'x' OR C != NULL))"},
		{q: "select * from X where 4 < State and 'a' = Name and -1.5 >= Size", class: "X", where: "(State > 4 AND Name = 'a' AND Size <= -1.5)"},
		{q: `select * from X where Name like "w0[0-4]%" and D is null and E = TRUE`, class: "X", where: "(Name like 'w0[0-4]%' AND D = NULL AND E = true)"},
		{q: "select * from X where (A = 1)", class: "X", where: "A = 1"},
		{q: "select * form X", wantErr: true},
		{q: "select * from X where", wantErr: true},
		{q: "select * from X where A = 'unterminated", wantErr: true},
		{q: "select * from X where A = B", wantErr: true},          // property on both sides
		{q: "select * from X where 1 = 2", wantErr: true},          // no property
		{q: "select * from X where DriveType IS 5", wantErr: true}, // IS takes only NULL
		{q: "select * from X where (A = 1", wantErr: true},
		{q: "select * from X where A = 1)", wantErr: true},
		{q: "select * from X where A like 5", wantErr: true},
		{q: "select * from X where Prop.embedprop = 5", wantErr: true},
		{q: "select * from X where A = 1.2.3", wantErr: true},
		{q: "select Null from X", wantErr: true},
		{q: "select * from X where " + strings.Repeat("(", 100) + "A = 1" + strings.Repeat(")", 100), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.q, func(t *testing.T) {
			got, err := parseWQL(tt.q)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got.class != tt.class || got.where.render() != tt.where || !slices.Equal(got.props, tt.props) {
				t.Errorf("got class %q props %q where %q", got.class, got.props, got.where.render())
			}
		})
	}
}

// FuzzParseKerberosToken: whatever a client puts in a Negotiate or
// Kerberos header, unwrapping it gives an AP-REQ or a reason, never a
// panic.
func FuzzParseKerberosToken(f *testing.F) {
	// NegTokenInit (krb5) around a GSS krb5 token header with an AP-REQ
	// tag and nothing in it; the raw GSS token; a NegTokenResp.
	f.Add("Negotiate", []byte("\x60\x1c\x06\x06\x2b\x06\x01\x05\x05\x02\xa0\x12\x30\x10\xa0\x0d\x30\x0b\x06\x09\x2a\x86\x48\x86\xf7\x12\x01\x02\x02"))
	f.Add("Kerberos", []byte("\x60\x0f\x06\x09\x2a\x86\x48\x86\xf7\x12\x01\x02\x02\x01\x00\x6e\x00"))
	f.Add("Negotiate", []byte("\xa1\x07\x30\x05\xa0\x03\x0a\x01\x00"))
	f.Add("Negotiate", []byte{})
	reasons := []string{KrbErrMalformed, KrbErrMech}
	f.Fuzz(func(t *testing.T, scheme string, b []byte) {
		tok, why := parseKrbToken(scheme, b)
		switch {
		case tok == nil && !slices.Contains(reasons, why):
			t.Fatalf("no token and reason %q", why)
		case tok != nil && why != "":
			t.Fatalf("token and reason %q", why)
		}
	})
}

// FuzzKerberosAccept: a token that unwraps goes on to the AP-REQ checks
// against the keytab; whatever it holds, accept gives a logon or a
// reason, never a panic.
func FuzzKerberosAccept(f *testing.F) {
	kt := fuzzKeytab(f)
	a := newKrbAcceptor(kt, nil)
	now := time.Now()
	f.Add(false, forgeAPReq(f, kt, now.Add(time.Hour), now, true))
	f.Add(true, forgeAPReq(f, kt, now.Add(-time.Hour), now, false))
	f.Fuzz(func(t *testing.T, kerberosScheme bool, tok []byte) {
		scheme := "Negotiate"
		if kerberosScheme {
			scheme = "Kerberos"
		}
		logon, why := a.accept(scheme, base64.StdEncoding.EncodeToString(tok), "127.0.0.1:1")
		if (logon == nil) == (why == "") {
			t.Fatalf("logon %+v and reason %q", logon, why)
		}
	})
}

package wsmantest

import (
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

func TestParseWQL(t *testing.T) {
	tests := []struct {
		q       string
		class   string
		props   []string
		groups  int
		wantErr bool
	}{
		{q: "select * from Win32_Service", class: "Win32_Service"},
		{q: "SELECT Name,State FROM BitsClientJob WHERE State = 2", class: "BitsClientJob", props: []string{"Name", "State"}, groups: 1},
		{q: "select * from X where A = 1 and B = 2 or C = 3", class: "X", groups: 2},
		{q: "select * form X", wantErr: true},
		{q: "select * from X where", wantErr: true},
		{q: "select * from X where A = 'unterminated", wantErr: true},
		{q: "select * from X where (A = 1)", wantErr: true},
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
			if got.class != tt.class || len(got.where) != tt.groups || len(got.props) != len(tt.props) {
				t.Errorf("got %+v", got)
			}
			for i := range tt.props {
				if got.props[i] != tt.props[i] {
					t.Errorf("props = %v, want %v", got.props, tt.props)
				}
			}
		})
	}
}

package cli

import (
	"encoding/json"
	"testing"

	"github.com/bitsremote/bitsremote/wsman"
)

// TestEPRWithReferenceSelector: a selector whose value is itself a
// reference prints as that reference (a nested object in JSON, bracketed
// in text), not as an empty string.
func TestEPRWithReferenceSelector(t *testing.T) {
	inner := &wsman.EndpointReference{Address: "http://h/wsman", ResourceURI: "http://r/Disk", Selectors: []wsman.Selector{{Name: "DeviceID", Value: "C:"}}}
	e := &wsman.EndpointReference{Address: "http://h/wsman", ResourceURI: "http://r/Assoc",
		Selectors: []wsman.Selector{{Name: "Name", Value: "x"}, {Name: "Part", EPR: inner}}}
	b, err := json.Marshal(eprJSON(e))
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"address":"http://h/wsman","resourceUri":"http://r/Assoc","selectors":{"Name":"x","Part":{"address":"http://h/wsman","resourceUri":"http://r/Disk","selectors":{"DeviceID":"C:"}}}}`
	if string(b) != want {
		t.Errorf("JSON\n got %s\nwant %s", b, want)
	}
	if got, want := eprText(e), "http://r/Assoc?Name=x+Part=(http://r/Disk?DeviceID=C:)"; got != want {
		t.Errorf("text %q, want %q", got, want)
	}
}

package wsman

import "github.com/bitsremote/bitsremote/wsman/transport"

// CheckReply classifies the reply to an envelope the caller built itself
// (the WinRS shell messages of masterzen/winrm, sent through c.Transport)
// exactly as every Client operation does: a *Fault for a SOAP fault
// whatever the HTTP status, an *HTTPError for 401, 413, 503 and bodies that
// are not SOAP, nil for a 200 SOAP envelope. op names the operation in
// errors ("Receive"). It does not check RelatesTo or Action; the caller
// knows what it sent.
func (c *Client) CheckReply(op string, resp *transport.Response) error {
	_, err := c.classify(op, "", resp)
	return err
}

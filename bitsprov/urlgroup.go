package bitsprov

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/bitsremote/bitsremote/wsman"
)

// Methods of the BITS Compact Server's URL groups (class BitsCompactServerUrlGroup).
// CreateUrlGroup is static, as in Microsoft's WMI how-to; every other
// method addresses the instance with selector UrlGroup=<prefix>
// (bits-provider.md §1.5). Go names spell URL in capitals; the wire
// names keep the provider's Url.

// URLGroupProperty names a URL group setting for GetProperty/SetProperty.
type URLGroupProperty string

// URL group settings.
const (
	// ConnectionLimit is the number of simultaneous connections.
	ConnectionLimit URLGroupProperty = "ConnectionLimit"
	// BandwidthLimit is in bytes per second (minimum 1024).
	BandwidthLimit URLGroupProperty = "BandwidthLimit"
)

// URLGroupAuthScheme is SetUrlGroupAuthentication's Scheme (uint16).
type URLGroupAuthScheme uint16

// URL group authentication schemes.
const (
	URLGroupAuthNegotiate URLGroupAuthScheme = 0
	URLGroupAuthNTLM      URLGroupAuthScheme = 1
)

// URLGroupAuth is GetUrlGroupAuthentication's answer.
type URLGroupAuth struct {
	Enable     bool
	Flag       uint32
	DomainName string
	Realm      string
}

func (c *Client) invokeGroup(ctx context.Context, method, group string, params []param) (*wsman.Instance, error) {
	if group == "" {
		return nil, fmt.Errorf("bitsprov: %s: empty UrlGroup", method)
	}
	out, _, err := c.invoke(ctx, URLGroupResourceURI, method, "UrlGroup", group, params)
	return out, err
}

// CreateURLGroup creates a URL group for a prefix such as
// https://Server1:80/testurlgroup (static method, no selectors).
func (c *Client) CreateURLGroup(ctx context.Context, group string) error {
	if group == "" {
		return errors.New("bitsprov: CreateUrlGroup: empty UrlGroup")
	}
	_, _, err := c.invoke(ctx, URLGroupResourceURI, "CreateUrlGroup", "", "", []param{p("UrlGroup", group)})
	return err
}

// DeleteURLGroup deletes a URL group.
func (c *Client) DeleteURLGroup(ctx context.Context, group string) error {
	_, err := c.invokeGroup(ctx, "DeleteUrlGroup", group, []param{p("UrlGroup", group)})
	return err
}

// CreateURL publishes sourcePath under group+suffix, readable by the
// principals of the SDDL string; it also creates the group if missing.
func (c *Client) CreateURL(ctx context.Context, group, suffix, sourcePath, sddl string) error {
	if suffix == "" || sourcePath == "" {
		return fmt.Errorf("bitsprov: CreateUrl on %s: suffix and source path are required", group)
	}
	_, err := c.invokeGroup(ctx, "CreateUrl", group, []param{
		p("UrlSuffix", suffix), p("SourceFilePath", sourcePath), p("SDDLAuth", sddl),
	})
	return err
}

// DeleteURL removes a published URL.
func (c *Client) DeleteURL(ctx context.Context, group, suffix string) error {
	_, err := c.invokeGroup(ctx, "DeleteUrl", group, []param{p("UrlSuffix", suffix)})
	return err
}

// CheckURL reports whether a URL is published.
func (c *Client) CheckURL(ctx context.Context, group, suffix string) (bool, error) {
	out, err := c.invokeGroup(ctx, "CheckUrl", group, []param{p("UrlSuffix", suffix)})
	if err != nil {
		return false, err
	}
	ok, err := props{out}.bool("UrlExists")
	if err != nil {
		return false, fmt.Errorf("%s: CheckUrl on %s: %w", c.host(), group, err)
	}
	return ok, nil
}

// GetURLGroupProperty reads ConnectionLimit or BandwidthLimit.
func (c *Client) GetURLGroupProperty(ctx context.Context, group string, prop URLGroupProperty) (uint32, error) {
	out, err := c.invokeGroup(ctx, "GetProperty", group, []param{p("Property", string(prop))})
	if err != nil {
		return 0, err
	}
	n, _, err := props{out}.uint("Value", 32)
	if err != nil {
		return 0, fmt.Errorf("%s: GetProperty on %s: %w", c.host(), group, err)
	}
	return uint32(n), nil
}

// SetURLGroupProperty sets ConnectionLimit or BandwidthLimit.
func (c *Client) SetURLGroupProperty(ctx context.Context, group string, prop URLGroupProperty, value uint32) error {
	if prop == BandwidthLimit && value < 1024 {
		return fmt.Errorf("bitsprov: SetProperty on %s: BandwidthLimit %d is below the minimum of 1024 bytes/s", group, value)
	}
	_, err := c.invokeGroup(ctx, "SetProperty", group, []param{p("Property", string(prop)), pu("Value", uint64(value))})
	return err
}

// GetSslCertificate returns the store name and hash bound to a port.
func (c *Client) GetSslCertificate(ctx context.Context, group string, port uint16) (store string, hash []byte, err error) {
	out, err := c.invokeGroup(ctx, "GetSslCertificate", group, []param{pu("Port", uint64(port))})
	if err != nil {
		return "", nil, err
	}
	pr := props{out}
	if store, err = pr.str("StoreName"); err != nil {
		return "", nil, fmt.Errorf("%s: GetSslCertificate on %s: %w", c.host(), group, err)
	}
	for i := range out.Props {
		if !strings.EqualFold(out.Props[i].Name, "hashBlob") {
			continue
		}
		for _, v := range out.Props[i].Values {
			if v.Kind == wsman.KindNil {
				continue
			}
			b, err := strconv.ParseUint(v.Text, 10, 8)
			if err != nil {
				return "", nil, fmt.Errorf("%s: GetSslCertificate on %s: hashBlob %q is not a uint8", c.host(), group, v.Text)
			}
			hash = append(hash, byte(b))
		}
	}
	return store, hash, nil
}

// SetSslCertificate binds a certificate (store name and hash) to a port.
func (c *Client) SetSslCertificate(ctx context.Context, group string, port uint16, store string, hash []byte) error {
	h := param{name: "hashBlob", values: make([]string, len(hash))}
	for i, b := range hash {
		h.values[i] = strconv.Itoa(int(b))
	}
	_, err := c.invokeGroup(ctx, "SetSslCertificate", group, []param{pu("Port", uint64(port)), p("StoreName", store), h})
	return err
}

// RemoveSslCertificate removes the certificate bound to a port.
func (c *Client) RemoveSslCertificate(ctx context.Context, group string, port uint16) error {
	_, err := c.invokeGroup(ctx, "RemoveSslCertificate", group, []param{pu("Port", uint64(port))})
	return err
}

// GetURLGroupAuthentication reads whether a scheme is enabled.
func (c *Client) GetURLGroupAuthentication(ctx context.Context, group string, scheme URLGroupAuthScheme) (*URLGroupAuth, error) {
	out, err := c.invokeGroup(ctx, "GetUrlGroupAuthentication", group, []param{pu("Scheme", uint64(scheme))})
	if err != nil {
		return nil, err
	}
	pr := props{out}
	a := &URLGroupAuth{}
	if a.Enable, err = pr.bool("Enable"); err == nil {
		var n uint64
		n, _, err = pr.uint("Flag", 32)
		a.Flag = uint32(n)
	}
	if err == nil {
		a.DomainName, err = pr.str("DomainName")
	}
	if err == nil {
		a.Realm, err = pr.str("Realm")
	}
	if err != nil {
		return nil, fmt.Errorf("%s: GetUrlGroupAuthentication on %s: %w", c.host(), group, err)
	}
	return a, nil
}

// SetURLGroupAuthentication enables or disables a scheme; Flag, DomainName
// and Realm are documented as 0 and NULL and are not sent.
func (c *Client) SetURLGroupAuthentication(ctx context.Context, group string, scheme URLGroupAuthScheme, enable bool) error {
	if scheme > URLGroupAuthNTLM {
		return fmt.Errorf("bitsprov: SetUrlGroupAuthentication on %s: scheme %d is reserved (0 Negotiate, 1 NTLM)", group, scheme)
	}
	_, err := c.invokeGroup(ctx, "SetUrlGroupAuthentication", group, []param{pu("Scheme", uint64(scheme)), pb("Enable", enable)})
	return err
}

// URLGroups lists the URL group prefixes on the host; a listing cut short
// in a Pull is started over as Jobs does.
func (c *Client) URLGroups(ctx context.Context) ([]string, error) {
	if c.WSMan == nil {
		return nil, errors.New("bitsprov: Enumerate: Client has no WSMan connection")
	}
	var groups []string
	err := c.list(ctx, URLGroupResourceURI, "Enumerate UrlGroups", func(in *wsman.Instance) error {
		g, err := props{in}.str("UrlGroup")
		if err != nil {
			return fmt.Errorf("%s: Enumerate UrlGroups: %w", c.host(), err)
		}
		groups = append(groups, g)
		return nil
	}, func() { groups = nil })
	if err != nil {
		return nil, err
	}
	return groups, nil
}

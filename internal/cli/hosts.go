package cli

import (
	"strings"

	"github.com/bitsremote/bitsremote/internal/fleet"
	"github.com/bitsremote/bitsremote/wsman/transport"
)

// Endpoint is one host to talk to: the name used in output and errors and
// the WS-Management URL.
type Endpoint struct {
	// Name is what the user wrote, as "host:port" (or an inventory
	// name); it is the host field of every result.
	Name string
	// URL is the WS-Management endpoint, e.g. http://host:5985/wsman.
	URL string
	// host is the inventory entry, with its per-host settings.
	host fleet.Host
}

// parseHost turns "host", "host:port", "[v6]:port" or a URL into an
// Endpoint. A port in spec wins over defaultPort; https picks the scheme
// when spec is not a URL.
func parseHost(spec string, defaultPort int, https bool) (Endpoint, error) {
	h, err := fleet.ParseHost(spec)
	if err != nil {
		return Endpoint{}, err
	}
	name, url := h.Endpoint(defaultPort, https)
	return Endpoint{Name: name, URL: url, host: h}, nil
}

// fleetHost is the host ep reaches, as the fleet connects to it.
func (ep Endpoint) fleetHost() fleet.Host {
	if ep.host.Address == "" {
		// An endpoint built without an inventory entry (tests).
		h, _ := fleet.ParseHost(ep.URL)
		return h
	}
	return ep.host
}

// https reports whether ep is reached over TLS.
func (ep Endpoint) https() bool { return strings.HasPrefix(strings.ToLower(ep.URL), "https://") }

// settings are the auth and encryption ep is reached with: the host's own
// (an inventory's ansible_winrm_transport and message_encryption, a
// ledger's record) over cfg's, the command line's. A host setting that
// does not parse is left to the transport, which refuses it by name.
func (ep Endpoint) settings(cfg transport.Config) (transport.Auth, transport.Encryption) {
	auth, enc := cfg.Auth, cfg.Encryption
	if ep.host.Auth != "" {
		if a, err := transport.ParseAuth(ep.host.Auth); err == nil {
			auth = a
		}
	}
	if ep.host.Encryption != "" {
		if e, err := transport.ParseEncryption(ep.host.Encryption); err == nil {
			enc = e
		}
	}
	return auth, enc
}

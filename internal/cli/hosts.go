package cli

import (
	"github.com/bitsremote/bitsremote/internal/fleet"
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

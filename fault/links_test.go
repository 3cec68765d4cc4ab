package fault_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
)

// link is a TCP proxy between a worker and one of its dependencies, on which
// a test adds toxics: latency, a reset, a hang, a bandwidth crawl.
type link struct {
	name  string
	proxy *toxiproxy.Proxy
}

var toxiServer = toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())

// newLink proxies a free loopback port to upstream ("host:port") until the
// test ends.
func newLink(t *testing.T, name, upstream string) *link {
	t.Helper()
	p := toxiproxy.NewProxy(toxiServer, name, "127.0.0.1:0", upstream)
	require.NoError(t, p.Start())
	t.Cleanup(p.Stop)
	return &link{name: name, proxy: p}
}

// Addr is the proxy's "host:port".
func (l *link) Addr() string { return l.proxy.Listen }

// toxicOn adds a toxic to one direction of the link — "upstream" (to the
// dependency), "downstream" (its answers) or "both" — and returns a
// function that removes it.
func (l *link) toxicOn(t *testing.T, direction, typ, attributes string) (remove func()) {
	t.Helper()
	streams := []string{direction}
	if direction == "both" {
		streams = []string{"upstream", "downstream"}
	}
	var names []string
	for _, stream := range streams {
		name := fmt.Sprintf("%s_%s", typ, stream)
		_, err := l.proxy.Toxics.AddToxicJson(strings.NewReader(
			fmt.Sprintf(`{"name": %q, "type": %q, "stream": %q, "attributes": %s}`, name, typ, stream, attributes)))
		require.NoError(t, err)
		names = append(names, name)
	}
	return func() {
		for _, n := range names {
			require.NoError(t, l.proxy.Toxics.RemoveToxic(context.Background(), n))
		}
	}
}

// hostPort is the "host:port" of a URL's authority.
func hostPort(t *testing.T, rawURL string) string {
	t.Helper()
	rest := rawURL[strings.Index(rawURL, "://")+3:]
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = rest[i+1:]
	}
	_, _, err := net.SplitHostPort(rest)
	require.NoError(t, err, rawURL)
	return rest
}

// via rewrites rawURL's host:port to l's.
func via(t *testing.T, rawURL string, l *link) string {
	t.Helper()
	return strings.Replace(rawURL, hostPort(t, rawURL), l.Addr(), 1)
}

package recover

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/tapir-backup/tapir/wire"
)

// explainHandshake says why the TLS handshake with the index server
// failed, from the shell's side: the certificates are this host's files
// (--ca, --cert, --key, or those in --tls-dir), the name checked is the
// host of --server or --server-name.
func explainHandshake(addr string, cfg *tls.Config, err error) error {
	what := "index server " + addr
	var unknown x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var inval x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknown):
		return fmt.Errorf("%s presented a certificate that this host's CA file does not sign (%v): the CA file given with --ca (or ca.crt in --tls-dir) must be a copy of the backup server's ca.crt; if it is, %s is not the tapir server you meant", what, err, addr)
	case errors.As(err, &hostErr):
		names := certNames(hostErr.Certificate)
		host := hostErr.Host
		if cfg != nil && cfg.ServerName != "" {
			host = cfg.ServerName
		}
		if net.ParseIP(host) != nil {
			return fmt.Errorf("%s presented a certificate for %s, not for the address %s: connect by that name (--server NAME), or keep the address and add --server-name %s", what, names, host, firstName(hostErr.Certificate))
		}
		return fmt.Errorf("%s presented a certificate for %s, not for %s: connect with --server %s, or add --server-name %s if %s is another name of that server", what, names, host, firstName(hostErr.Certificate), firstName(hostErr.Certificate), host)
	case errors.As(err, &inval):
		return fmt.Errorf("%s presented a certificate that is not valid (%v): the backup administrator renews it with `tapir ca issue` on the backup server", what, err)
	}
	msg := err.Error()
	if strings.Contains(msg, "bad certificate") || strings.Contains(msg, "unknown certificate authority") || strings.Contains(msg, "certificate required") {
		return fmt.Errorf("%s refused our certificate (%v): this host's certificate (--cert, or client.crt in --tls-dir) is not signed by the backup server's CA or lacks the client role; issue one there with `tapir ca issue HOST` and install it here", what, err)
	}
	return wire.ExplainTLS(what, err)
}

func certNames(c *x509.Certificate) string {
	if c == nil {
		return "another name"
	}
	var ns []string
	ns = append(ns, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		ns = append(ns, ip.String())
	}
	if len(ns) == 0 {
		return "no name"
	}
	return strings.Join(ns, ", ")
}

func firstName(c *x509.Certificate) string {
	if c != nil && len(c.DNSNames) > 0 {
		return c.DNSNames[0]
	}
	return "NAME"
}

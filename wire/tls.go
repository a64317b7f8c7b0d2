package wire

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Files names the three PEM files a tapir process presents on every
// connection: the CA that signs all peers, its own certificate and key.
type Files struct {
	CA, Cert, Key string
}

func (f Files) load() (tls.Certificate, *x509.CertPool, error) {
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("load certificate %s with key %s: %w (issue one with `tapir ca issue`)", f.Cert, f.Key, err)
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("load CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return tls.Certificate{}, nil, fmt.Errorf("load CA certificate %s: no PEM certificate in it", f.CA)
	}
	return pair, pool, nil
}

// ServerConfig is the mutual-TLS 1.3 configuration of a listening side.
// Peers must present a certificate signed by the CA and, when roles is not
// empty, carrying one of those roles.
func ServerConfig(f Files, roles ...string) (*tls.Config, error) {
	pair, pool, err := f.load()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(roles) == 0 {
				return nil
			}
			if len(cs.PeerCertificates) == 0 {
				return errors.New("peer presented no certificate")
			}
			peer := cs.PeerCertificates[0]
			for _, r := range roles {
				if HasRole(peer, r) {
					return nil
				}
			}
			return fmt.Errorf("peer %q has roles %v; this service accepts only %v", peer.Subject.CommonName, peer.Subject.OrganizationalUnit, roles)
		},
	}, nil
}

// ClientConfig is the mutual-TLS 1.3 configuration of a dialing side that
// expects the peer's certificate to name serverName.
func ClientConfig(f Files, serverName string) (*tls.Config, error) {
	pair, pool, err := f.load()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		RootCAs:      pool,
		ServerName:   serverName,
	}, nil
}

// Peer is who is on the other side of a verified connection.
type Peer struct {
	Host  string
	Roles []string
}

// PeerOf returns the identity of a completed handshake.
func PeerOf(cs tls.ConnectionState) (Peer, error) {
	if len(cs.PeerCertificates) == 0 {
		return Peer{}, errors.New("peer presented no certificate")
	}
	c := cs.PeerCertificates[0]
	return Peer{Host: c.Subject.CommonName, Roles: c.Subject.OrganizationalUnit}, nil
}

// ExplainTLS turns a handshake failure into a sentence a person can act
// on. what names the other side, e.g. "client agent web1 at 10.0.0.5:10080".
func ExplainTLS(what string, err error) error {
	var unknown x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var inval x509.CertificateInvalidError
	msg := err.Error()
	switch {
	case errors.As(err, &unknown):
		return fmt.Errorf("%s presented a certificate not signed by this server's CA (%s); issue it a certificate with `tapir ca issue` and install it there", what, err)
	case errors.As(err, &hostErr):
		return fmt.Errorf("%s presented a certificate for another host (%s); issue one for the right name with `tapir ca issue`", what, err)
	case errors.As(err, &inval):
		return fmt.Errorf("%s presented an invalid certificate (%s)", what, err)
	case strings.Contains(msg, "bad certificate") || strings.Contains(msg, "unknown certificate authority") || strings.Contains(msg, "certificate required"):
		return fmt.Errorf("%s refused our certificate (%s): it does not trust this server's CA or our role; install this server's ca.crt there", what, err)
	}
	return fmt.Errorf("%s: TLS handshake failed: %w", what, err)
}

package wire

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Roles carried in a certificate's OrganizationalUnit. A client agent
// accepts only RoleServer peers; the index server lets RoleAdmin browse
// every host and RoleClient only its own.
const (
	RoleServer = "tapir-server"
	RoleClient = "tapir-client"
	RoleAdmin  = "tapir-admin"
)

// File names inside a CA directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// CAValidity and CertValidity are how long issued certificates last.
const (
	CAValidity   = 20 * 365 * 24 * time.Hour
	CertValidity = 5 * 365 * 24 * time.Hour
)

// CA is a loaded certificate authority able to issue certificates.
type CA struct {
	Dir  string
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// InitCA creates a new CA (ECDSA P-256) in dir: ca.crt (0644) and ca.key
// (0600). It refuses to overwrite an existing CA, because every certificate
// issued by it would stop working.
func InitCA(dir, org string, now time.Time) (*CA, error) {
	certPath := filepath.Join(dir, CACertFile)
	if _, err := os.Stat(certPath); err == nil {
		return nil, fmt.Errorf("ca init: %s already exists; a new CA would invalidate every certificate it issued (remove the directory first if that is really what you want)", certPath)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("ca init: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ca init: generate key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "tapir CA " + org, Organization: []string{org}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("ca init: create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca init: %w", err)
	}
	if err := writeKey(filepath.Join(dir, CAKeyFile), key); err != nil {
		return nil, fmt.Errorf("ca init: %w", err)
	}
	if err := writePEM(certPath, "CERTIFICATE", der, 0o644); err != nil {
		return nil, fmt.Errorf("ca init: %w", err)
	}
	return &CA{Dir: dir, Cert: cert, Key: key}, nil
}

// LoadCA reads the CA certificate and key from dir.
func LoadCA(dir string) (*CA, error) {
	cert, err := LoadCert(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("load CA: %w (run `tapir ca init` first)", err)
	}
	key, err := LoadKey(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	return &CA{Dir: dir, Cert: cert, Key: key}, nil
}

// Issue creates a certificate for host with the given roles, valid both as
// a TLS client and a TLS server, and writes <outDir>/<host>.crt and
// <outDir>/<host>.key (0600). It returns the two paths.
func (ca *CA) Issue(host string, roles []string, outDir string, now time.Time) (certPath, keyPath string, err error) {
	if err := ValidHostName(host); err != nil {
		return "", "", fmt.Errorf("ca issue: %w", err)
	}
	if len(roles) == 0 {
		return "", "", errors.New("ca issue: no role given")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("ca issue %s: generate key: %w", host, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject: pkix.Name{
			CommonName:         host,
			Organization:       ca.Cert.Subject.Organization,
			OrganizationalUnit: roles,
		},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.Add(CertValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
		if host == "localhost" {
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return "", "", fmt.Errorf("ca issue %s: %w", host, err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", "", fmt.Errorf("ca issue %s: %w", host, err)
	}
	certPath = filepath.Join(outDir, host+".crt")
	keyPath = filepath.Join(outDir, host+".key")
	if err := writeKey(keyPath, key); err != nil {
		return "", "", fmt.Errorf("ca issue %s: %w", host, err)
	}
	if err := writePEM(certPath, "CERTIFICATE", der, 0o644); err != nil {
		return "", "", fmt.Errorf("ca issue %s: %w", host, err)
	}
	return certPath, keyPath, nil
}

// ValidHostName accepts what may stand in a certificate and a disk list:
// an IP address or a DNS name of labels [A-Za-z0-9-] up to 63 bytes.
func ValidHostName(host string) error {
	if net.ParseIP(host) != nil {
		return nil
	}
	if host == "" || len(host) > 253 {
		return fmt.Errorf("host name %q: must be 1 to 253 characters", host)
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("host name %q: empty or over-long label", host)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			ok := c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
			if !ok || (c == '-' && (i == 0 || i == len(label)-1)) {
				return fmt.Errorf("host name %q: invalid character %q", host, c)
			}
		}
	}
	return nil
}

// HasRole reports whether cert carries role.
func HasRole(cert *x509.Certificate, role string) bool {
	return slices.Contains(cert.Subject.OrganizationalUnit, role)
}

// LoadCert reads one PEM certificate.
func LoadCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: not a PEM certificate", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// LoadKey reads one PEM EC private key.
func LoadKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: not a PEM key", path)
	}
	k, err := x509.ParseECPrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "EC PRIVATE KEY", der, 0o600)
}

// writePEM writes atomically (temp file, fsync, rename) with the given mode.
func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil { // umask must not widen nor narrow it
		f.Close()
		return err
	}
	if err := pem.Encode(f, &pem.Block{Type: typ, Bytes: der}); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("crypto/rand failed: " + err.Error()) // the OS has no entropy: nothing safe to do
	}
	return n
}

package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Mailer sends one message. SMTP is the implementation; tests and callers
// that only collect messages may bring their own.
type Mailer interface {
	Send(ctx context.Context, m *Message) error
}

// TLSPolicy says when SMTP encrypts the conversation with STARTTLS.
type TLSPolicy string

const (
	TLSAuto   TLSPolicy = "auto"   // when the server offers it (the default)
	TLSAlways TLSPolicy = "always" // refuse a server that does not offer it
	TLSNever  TLSPolicy = "never"  // plain text (a local relay)
)

// DefaultTimeout bounds the connect and the wait for each reply.
const DefaultTimeout = time.Minute

// SMTP sends mail to one SMTP server (a relay or a submission port) with
// github.com/emersion/go-smtp: EHLO with the local host name, STARTTLS
// according to StartTLS (the server's certificate verified against the
// system roots or CAFile), AUTH PLAIN or LOGIN when Username is set, then
// MAIL FROM, RCPT TO for every recipient and DATA.
type SMTP struct {
	Addr         string        // host:port of the server, e.g. "smtp.example.com:587"
	StartTLS     TLSPolicy     // "" is TLSAuto
	CAFile       string        // PEM file of the CA(s) to trust for the server; "" = the system roots
	Username     string        // AUTH as this user; "" = no AUTH
	PasswordFile string        // the password is the first line of this file; required with Username
	Timeout      time.Duration // connect and wait for each reply; 0 = DefaultTimeout
	Hello        string        // the name in EHLO; "" = this host's name
	Log          *slog.Logger  // nil = no log
}

// Validate checks the settings without contacting the server, so that
// `tapir config check` can name a mistake before the first report is due.
func (s *SMTP) Validate() error {
	host, port, err := net.SplitHostPort(s.Addr)
	if err != nil || host == "" || port == "" {
		return fmt.Errorf("mail server %q: want host:port, e.g. localhost:25 or smtp.example.com:587", s.Addr)
	}
	switch s.StartTLS {
	case "", TLSAuto, TLSAlways, TLSNever:
	default:
		return fmt.Errorf("mail starttls %q: want auto, always or never", s.StartTLS)
	}
	if s.Username != "" && s.PasswordFile == "" {
		return fmt.Errorf("mail username %q is set but no password_file: put the password in a file readable only by tapir and name it", s.Username)
	}
	if s.PasswordFile != "" {
		if _, err := s.password(); err != nil {
			return err
		}
	}
	if s.CAFile != "" {
		if _, err := s.rootCAs(); err != nil {
			return err
		}
	}
	if s.Timeout < 0 {
		return fmt.Errorf("mail timeout %s is negative", s.Timeout)
	}
	return nil
}

// Error is a failed send: which mail, through which server, at which step
// of the SMTP conversation, and the server's reply when it gave one.
type Error struct {
	To     []string // the recipients concerned
	Server string
	Step   string // "connect", "greeting", "EHLO backup1", "STARTTLS", "TLS handshake", "AUTH PLAIN as u", "MAIL FROM <a>", "RCPT TO <b>", "DATA", ...
	Reply  string // "550 5.1.1 no such user"; "" when the server said nothing
	Err    error
	Hint   string // what to do, when tapir can tell
}

func (e *Error) Error() string {
	s := fmt.Sprintf("mail to %s via %s: %s: ", strings.Join(e.To, ", "), e.Server, e.Step)
	if e.Reply != "" {
		s += e.Reply
	} else if e.Err != nil {
		s += e.Err.Error()
	}
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Send delivers m. A recipient the server refuses is an error naming it;
// the message still goes to the recipients it accepts, and the error says
// so.
func (s *SMTP) Send(ctx context.Context, m *Message) error {
	from, to, err := m.addresses()
	if err != nil {
		return fmt.Errorf("mail via %s: %w", s.Addr, err)
	}
	rcpts := make([]string, len(to))
	for i, a := range to {
		rcpts[i] = a.Address
	}
	fail := func(step string, err error, hint string) *Error {
		return &Error{To: rcpts, Server: s.Addr, Step: step, Reply: reply(err), Err: err, Hint: hint}
	}
	data, err := m.Bytes()
	if err != nil {
		return fail("compose", err, "")
	}
	password := ""
	if s.Username != "" {
		if password, err = s.password(); err != nil {
			return fail("read the password", err, "")
		}
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	helloName := s.Hello
	if helloName == "" {
		if helloName, err = os.Hostname(); err != nil || helloName == "" {
			helloName = "localhost"
		}
	}
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return fail("connect", err, "the mail server must be host:port")
	}

	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		if ce := ctx.Err(); ce != nil {
			return fail("connect", ce, "")
		}
		return fail("connect", err, "is the mail server up and the address right? check the [mail] server setting")
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	c, encrypted, err := s.open(ctx, conn, host, helloName, timeout, fail)
	if err != nil {
		return err
	}
	defer c.Close()
	c.CommandTimeout, c.SubmissionTimeout = timeout, timeout

	if s.Username != "" {
		if err := s.auth(c, host, encrypted, password, fail); err != nil {
			return err
		}
	}
	var opts *smtp.MailOptions
	if !isASCII(from.Address) || !isASCII(strings.Join(rcpts, "")) {
		opts = &smtp.MailOptions{UTF8: true}
	}
	if err := c.Mail(from.Address, opts); err != nil {
		return fail("MAIL FROM <"+from.Address+">", ctxErr(ctx, err), "")
	}
	var refused []error
	var accepted []string
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			if ce := ctx.Err(); ce != nil {
				return fail("RCPT TO <"+r+">", ce, "")
			}
			e := fail("RCPT TO <"+r+">", err, "")
			e.To = []string{r}
			refused = append(refused, e)
			continue
		}
		accepted = append(accepted, r)
	}
	if len(accepted) == 0 {
		return errors.Join(refused...)
	}
	w, err := c.Data()
	if err != nil {
		return fail("DATA", ctxErr(ctx, err), "")
	}
	if _, err := w.Write(data); err != nil {
		return fail("DATA (sending the message)", ctxErr(ctx, err), "")
	}
	if err := w.Close(); err != nil {
		return fail("DATA (end of message)", ctxErr(ctx, err), "the server refused the message")
	}
	if err := c.Quit(); err != nil && s.Log != nil {
		s.Log.Debug("QUIT after the message was accepted", "server", s.Addr, "err", err)
	}
	if s.Log != nil {
		s.Log.Info("mail sent", "server", s.Addr, "to", strings.Join(accepted, ","), "subject", m.Subject, "tls", encrypted)
	}
	for _, e := range refused {
		e.(*Error).Hint = "sent to the other recipients: " + strings.Join(accepted, ", ")
	}
	return errors.Join(refused...)
}

// open reads the greeting and says EHLO with our name, switches to TLS
// when the policy and the server agree, and hands the connection to a
// go-smtp client, which says EHLO again (over TLS: required, the server
// forgets everything said before; in plain text: allowed by RFC 5321).
//
// The first EHLO is spoken here because go-smtp's client offers STARTTLS
// only before its own first EHLO, always as "localhost".
func (s *SMTP) open(ctx context.Context, conn net.Conn, host, helloName string, timeout time.Duration,
	fail func(string, error, string) *Error) (*smtp.Client, bool, error) {
	policy := s.StartTLS
	if policy == "" {
		policy = TLSAuto
	}
	conn.SetDeadline(time.Now().Add(timeout))
	tp := textproto.NewConn(conn)
	if _, _, err := tp.ReadResponse(220); err != nil {
		return nil, false, fail("greeting", ctxErr(ctx, err), "is this an SMTP server?")
	}
	ehlo := "EHLO " + helloName
	id, err := tp.Cmd("%s", ehlo)
	if err != nil {
		return nil, false, fail(ehlo, ctxErr(ctx, err), "")
	}
	tp.StartResponse(id)
	_, msg, err := tp.ReadResponse(250)
	tp.EndResponse(id)
	if err != nil {
		return nil, false, fail(ehlo, ctxErr(ctx, err), "")
	}
	offered := false
	for _, l := range strings.Split(msg, "\n")[1:] {
		offered = offered || strings.EqualFold(strings.TrimSpace(l), "STARTTLS")
	}
	greeting := "220 " + host + " ESMTP (greeted before)\r\n"
	conn.SetDeadline(time.Time{})
	if policy == TLSNever || !offered {
		if policy == TLSAlways {
			return nil, false, fail("STARTTLS", errors.New("the server does not offer STARTTLS"),
				`starttls = "always" refuses to send in clear text; use a server or port that offers STARTTLS, or set starttls = "auto"`)
		}
		// Whatever the reader holds already belongs to the client.
		rest, _ := tp.R.Peek(tp.R.Buffered())
		c := smtp.NewClient(&greeted{Conn: conn, pending: append([]byte(greeting), rest...)})
		if err := c.Hello(helloName); err != nil {
			c.Close()
			return nil, false, fail(ehlo, ctxErr(ctx, err), "")
		}
		return c, false, nil
	}
	conn.SetDeadline(time.Now().Add(timeout))
	id, err = tp.Cmd("STARTTLS")
	if err == nil {
		tp.StartResponse(id)
		_, _, err = tp.ReadResponse(220)
		tp.EndResponse(id)
	}
	if err != nil {
		return nil, false, fail("STARTTLS", ctxErr(ctx, err), "")
	}
	if tp.R.Buffered() > 0 {
		// Bytes sent in clear text after the STARTTLS reply would be
		// taken as said over TLS: a man in the middle injecting replies.
		return nil, false, fail("STARTTLS", errors.New("the server sent data before the TLS handshake"), "someone may be tampering with the connection")
	}
	roots, err := s.rootCAs()
	if err != nil {
		return nil, false, fail("TLS handshake", err, "")
	}
	tc := tls.Client(conn, &tls.Config{ServerName: host, RootCAs: roots, MinVersion: tls.VersionTLS12})
	if err := tc.HandshakeContext(ctx); err != nil {
		hint := "the server's certificate must be valid for " + host
		if s.CAFile != "" {
			hint += " and signed by a CA in " + s.CAFile
		} else {
			hint += " and signed by a CA the system trusts (or set the mail ca file)"
		}
		return nil, false, fail("TLS handshake", ctxErr(ctx, err), hint)
	}
	conn.SetDeadline(time.Time{})
	c := smtp.NewClient(&greeted{Conn: tc, pending: []byte(greeting)})
	if err := c.Hello(helloName); err != nil {
		c.Close()
		return nil, false, fail(ehlo+" (over TLS)", ctxErr(ctx, err), "")
	}
	return c, true, nil
}

// auth logs in with PLAIN, or LOGIN when the server offers only that.
// The password never travels in clear text except to this machine.
func (s *SMTP) auth(c *smtp.Client, host string, encrypted bool, password string, fail func(string, error, string) *Error) error {
	if !encrypted && !isLoopback(host) {
		return fail("AUTH", errors.New("the conversation is not encrypted"),
			"tapir sends a password only over TLS: use a server or port that offers STARTTLS and starttls = \"auto\" or \"always\"")
	}
	ok, mechs := c.Extension("AUTH")
	if !ok {
		return fail("AUTH", errors.New("the server does not offer AUTH"), "remove the mail username, or use the submission port (587)")
	}
	var client sasl.Client
	var mech string
	switch {
	case hasWord(mechs, sasl.Plain):
		mech, client = sasl.Plain, sasl.NewPlainClient("", s.Username, password)
	case hasWord(mechs, sasl.Login):
		mech, client = sasl.Login, sasl.NewLoginClient(s.Username, password)
	default:
		return fail("AUTH", fmt.Errorf("the server offers %s", mechs), "tapir speaks PLAIN and LOGIN")
	}
	if err := c.Auth(client); err != nil {
		hint := ""
		var se *smtp.SMTPError
		if errors.As(err, &se) && se.Code == 535 {
			hint = "check the mail username and the password in " + s.PasswordFile
		}
		return fail("AUTH "+mech+" as "+s.Username, err, hint)
	}
	return nil
}

// password is the first line of PasswordFile.
func (s *SMTP) password() (string, error) {
	b, err := os.ReadFile(s.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("mail password file: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", fmt.Errorf("mail password file %s: the first line is empty; it must hold the password", s.PasswordFile)
	}
	if fi, err := os.Stat(s.PasswordFile); err == nil && fi.Mode().Perm()&0o077 != 0 && s.Log != nil {
		s.Log.Warn("mail password file is readable by others; chmod 600 it", "file", s.PasswordFile, "mode", fi.Mode().Perm().String())
	}
	return line, nil
}

// rootCAs is nil (the system roots) or the certificates of CAFile.
func (s *SMTP) rootCAs() (*x509.CertPool, error) {
	if s.CAFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(s.CAFile)
	if err != nil {
		return nil, fmt.Errorf("mail CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("mail CA file %s holds no PEM certificate", s.CAFile)
	}
	return pool, nil
}

// greeted is a connection on which the greeting was already read: it
// replays one to the go-smtp client, then reads on.
type greeted struct {
	net.Conn
	pending []byte
}

func (g *greeted) Read(p []byte) (int, error) {
	if len(g.pending) > 0 {
		n := copy(p, g.pending)
		g.pending = g.pending[n:]
		return n, nil
	}
	return g.Conn.Read(p)
}

// reply words the server's answer in err as "550 5.1.1 no such user".
func reply(err error) string {
	var se *smtp.SMTPError
	var te *textproto.Error
	switch {
	case errors.As(err, &se):
		msg := strings.ReplaceAll(se.Message, "\n", " / ")
		if e := se.EnhancedCode; e[0] > 0 {
			return fmt.Sprintf("%d %d.%d.%d %s", se.Code, e[0], e[1], e[2], msg)
		}
		return fmt.Sprintf("%d %s", se.Code, msg)
	case errors.As(err, &te):
		return fmt.Sprintf("%d %s", te.Code, strings.ReplaceAll(te.Msg, "\n", " / "))
	}
	return ""
}

// ctxErr prefers the context's error: a closed connection after a
// cancel is the cancel.
func ctxErr(ctx context.Context, err error) error {
	if ce := ctx.Err(); ce != nil {
		return ce
	}
	if errors.Is(err, io.EOF) {
		return errors.New("the server closed the connection")
	}
	return err
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func hasWord(list, word string) bool {
	for _, w := range strings.Fields(list) {
		if strings.EqualFold(w, word) {
			return true
		}
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

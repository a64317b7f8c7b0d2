package mail

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
)

// ErrNoRecipients is returned for a message without a recipient; a caller
// with an empty mailto should not send at all.
var ErrNoRecipients = errors.New("no recipient: set mailto in the configuration")

// Message is one mail: a plain-text body and optional attachments.
type Message struct {
	From    string   // RFC 5322 address, "tapir@backup1.example.com" or "Tapir <tapir@...>"
	To      []string // one address each
	Subject string
	Date    time.Time
	ID      string      // Message-ID without the angle brackets; "" = made up from random bytes and the From domain
	Headers [][2]string // extra header fields (name, value), e.g. X-Tapir-Status
	Text    string      // the body, UTF-8, lines ending in "\n"
	// Attachments follow the text as further MIME parts
	// (multipart/mixed); none makes a single text/plain message.
	Attachments []Attachment
}

// Attachment is one further part of a message.
type Attachment struct {
	Name        string // file name offered to the reader
	ContentType string // e.g. "application/json; charset=utf-8"
	Data        []byte
}

// addresses parses From and To; the envelope uses the bare addresses.
func (m *Message) addresses() (from *mail.Address, to []*mail.Address, err error) {
	from, err = mail.ParseAddress(m.From)
	if err != nil {
		return nil, nil, fmt.Errorf("sender %q is not an e-mail address: %v", m.From, err)
	}
	if len(m.To) == 0 {
		return nil, nil, ErrNoRecipients
	}
	for _, t := range m.To {
		a, err := mail.ParseAddress(t)
		if err != nil {
			return nil, nil, fmt.Errorf("recipient %q is not an e-mail address: %v", t, err)
		}
		to = append(to, a)
	}
	return from, to, nil
}

// Bytes is the message as sent: RFC 5322 header fields (From, To, Subject,
// Date, Message-ID, MIME-Version, Content-Type, Content-Transfer-Encoding)
// and a quoted-printable UTF-8 body, every line ending in CRLF.
func (m *Message) Bytes() ([]byte, error) {
	from, to, err := m.addresses()
	if err != nil {
		return nil, err
	}
	id := m.ID
	if id == "" {
		id, err = MessageID(domainOf(from.Address))
		if err != nil {
			return nil, err
		}
	}
	var tos []string
	for _, a := range to {
		tos = append(tos, a.String())
	}
	fields := [][2]string{
		{"From", from.String()},
		{"To", strings.Join(tos, ", ")},
		{"Subject", mime.QEncoding.Encode("utf-8", m.Subject)},
		{"Date", m.Date.Format(time.RFC1123Z)},
		{"Message-ID", "<" + id + ">"},
		{"MIME-Version", "1.0"},
		{"Auto-Submitted", "auto-generated"},
	}
	for _, h := range m.Headers {
		if textproto.CanonicalMIMEHeaderKey(h[0]) != h[0] || strings.ContainsAny(h[0], " :\r\n") || h[0] == "" {
			return nil, fmt.Errorf("header field name %q is not valid (write it like X-Tapir-Status)", h[0])
		}
		fields = append(fields, h)
	}
	var b bytes.Buffer
	for _, f := range fields {
		if strings.ContainsAny(f[1], "\r\n") {
			return nil, fmt.Errorf("header %s holds a line break; a header value is one line", f[0])
		}
		fmt.Fprintf(&b, "%s: %s\r\n", f[0], f[1])
	}
	if len(m.Attachments) == 0 {
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
		if err := writeQP(&b, []byte(m.Text)); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
	mw := multipart.NewWriter(&b)
	fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=%q\r\n\r\n", mw.Boundary())
	b.WriteString("This is a MIME message: the report is the first part, in plain text.\r\n")
	pw, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {"text/plain; charset=utf-8"},
		"Content-Transfer-Encoding": {"quoted-printable"},
	})
	if err != nil {
		return nil, err
	}
	if err := writeQP(pw, []byte(m.Text)); err != nil {
		return nil, err
	}
	for _, a := range m.Attachments {
		if strings.ContainsAny(a.Name+a.ContentType, "\r\n\"") {
			return nil, fmt.Errorf("attachment %q: name and content type must be one line without quotes", a.Name)
		}
		pw, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {a.ContentType},
			"Content-Disposition":       {fmt.Sprintf("attachment; filename=%q", a.Name)},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, err
		}
		if err := writeQP(pw, a.Data); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// writeQP writes text quoted-printable with CRLF line ends, closed by a
// line end.
func writeQP(w interface{ Write([]byte) (int, error) }, text []byte) error {
	q := quotedprintable.NewWriter(w)
	if _, err := q.Write(text); err != nil {
		return err
	}
	if err := q.Close(); err != nil {
		return err
	}
	if len(text) > 0 && text[len(text)-1] != '\n' {
		_, err := w.Write([]byte("\r\n"))
		return err
	}
	return nil
}

// MessageID makes a unique Message-ID (without angle brackets) in domain.
func MessageID(domain string) (string, error) {
	var r [12]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("make a Message-ID: %w", err)
	}
	if domain == "" {
		domain = "localhost"
	}
	return "tapir." + hex.EncodeToString(r[:]) + "@" + domain, nil
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

package mail

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tapir-backup/tapir/report"
)

var sent = time.Date(2025, 3, 4, 4, 2, 10, 0, time.FixedZone("CET", 3600))

// night is a small run with a strange DLE and lines that need care in a
// mail: a dot alone on a line, a line starting with a dot, non-ASCII,
// a long line.
func night() *report.Run {
	start := time.Date(2025, 3, 4, 1, 0, 0, 0, time.FixedZone("CET", 3600))
	return &report.Run{Org: "DailySet1", Config: "/etc/tapir/tapir.toml", Hostname: "backup1.test", Datestamp: "20250304010000",
		Kind: report.KindDump, Start: start, End: start.Add(3 * time.Hour),
		Volumes:     []report.Volume{{Label: "DailySet1-006", Slot: 6, Files: 1, Bytes: 1 << 30, Length: 400 << 30, Time: time.Hour}},
		NextVolumes: []string{"volume DailySet1-007 in slot 7"},
		DLEs: []report.DLE{{Host: "mail1", Path: "/var/mail/Überweisungen", Level: 1, Status: report.StatusStrange,
			OrigSize: 2 << 30, OutSize: 1 << 30, DumpTime: time.Hour, TapeTime: time.Minute,
			Parts:   []report.Part{{Volume: "DailySet1-006", FileNo: 1, Part: 1, Bytes: 1 << 30}},
			Strange: []string{".", "..hidden: file changed as we read it", "tar: ./spool/" + strings.Repeat("x", 1200) + ": Cannot open"}}},
	}
}

func opts(to ...string) Options {
	return Options{From: "tapir@backup1.test", To: to, Hostname: "backup1.test", Now: func() time.Time { return sent }}
}

// body decodes a single-part message and checks its headers.
func parse(t *testing.T, data []byte) (*mail.Message, string) {
	t.Helper()
	for i, l := range bytes.SplitAfter(data, []byte("\n")) {
		if len(l) > 0 && !bytes.HasSuffix(l, []byte("\r\n")) {
			t.Fatalf("line %d does not end in CRLF: %q", i+1, l)
		}
		if len(l) > 1000 {
			t.Fatalf("line %d is %d bytes long, over RFC 5322's 998", i+1, len(l))
		}
	}
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return m, ""
}

func decodeQP(t *testing.T, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(quotedprintable.NewReader(r))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// checkReport checks the headers of a received report and that its body
// is the report text byte for byte.
func checkReport(t *testing.T, data []byte, r *report.Run, to string) {
	t.Helper()
	m, _ := parse(t, data)
	h := m.Header
	dec := new(mime.WordDecoder)
	subject, err := dec.DecodeHeader(h.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"From": "<tapir@backup1.test>", "To": to, "MIME-Version": "1.0",
		"Content-Type": "text/plain; charset=utf-8", "Content-Transfer-Encoding": "quoted-printable",
		"Auto-Submitted": "auto-generated", "X-Tapir-Run": "20250304010000", "X-Tapir-Status": "strange",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if subject != r.Subject() {
		t.Errorf("Subject = %q, want %q", subject, r.Subject())
	}
	if d, err := h.Date(); err != nil || !d.Equal(sent) {
		t.Errorf("Date = %v (%v), want %v", d, err, sent)
	}
	if id := h.Get("Message-ID"); !regexp.MustCompile(`^<tapir\.[0-9a-f]{24}@backup1\.test>$`).MatchString(id) {
		t.Errorf("Message-ID = %q", id)
	}
	if got, want := decodeQP(t, m.Body), crlf(r.Text()); got != want {
		t.Errorf("body differs from the report text:\n--- got\n%s\n--- want\n%s", got, want)
	}
}

func TestSendPlain(t *testing.T) {
	srv := startServer(t, &backend{}, nil, false)
	s := &SMTP{Addr: srv.addr, Hello: "backup1.test", Timeout: 5 * time.Second}
	r := night()
	if err := SendRun(context.Background(), s, r, opts("ops@example.test")); err != nil {
		t.Fatal(err)
	}
	got := srv.be.got()
	if len(got) != 1 {
		t.Fatalf("%d messages received", len(got))
	}
	m := got[0]
	if m.helo != "backup1.test" || m.tls || m.from != "tapir@backup1.test" || strings.Join(m.to, ",") != "ops@example.test" {
		t.Errorf("envelope: %+v", m)
	}
	checkReport(t, m.data, r, "<ops@example.test>")
}

func TestSendStartTLS(t *testing.T) {
	tlsCfg, ca := testCA(t)
	srv := startServer(t, &backend{}, tlsCfg, false)
	for _, policy := range []TLSPolicy{"", TLSAuto, TLSAlways} {
		s := &SMTP{Addr: srv.addr, StartTLS: policy, CAFile: ca, Hello: "backup1.test", Timeout: 5 * time.Second}
		if err := SendRun(context.Background(), s, night(), opts("ops@example.test", "dev@example.test")); err != nil {
			t.Fatalf("policy %q: %v", policy, err)
		}
	}
	got := srv.be.got()
	if len(got) != 3 {
		t.Fatalf("%d messages received, want 3", len(got))
	}
	for _, m := range got {
		if !m.tls || m.helo != "backup1.test" || strings.Join(m.to, ",") != "ops@example.test,dev@example.test" {
			t.Errorf("envelope: tls %v helo %q to %v", m.tls, m.helo, m.to)
		}
		checkReport(t, m.data, night(), "<ops@example.test>, <dev@example.test>")
	}
	// The first EHLO, before TLS, names this host too, never "localhost".
	if d := srv.debug.String(); !strings.Contains(d, "EHLO backup1.test") || strings.Contains(d, "EHLO localhost") {
		t.Errorf("conversation before TLS:\n%s", d)
	}
}

func TestStartTLSPolicy(t *testing.T) {
	tlsCfg, ca := testCA(t)
	plain := startServer(t, &backend{}, nil, false)
	withTLS := startServer(t, &backend{}, tlsCfg, false)

	// never: clear text although the server offers STARTTLS.
	s := &SMTP{Addr: withTLS.addr, StartTLS: TLSNever, Hello: "backup1.test", Timeout: 5 * time.Second}
	if err := SendRun(context.Background(), s, night(), opts("ops@example.test")); err != nil {
		t.Fatal(err)
	}
	if got := withTLS.be.got(); len(got) != 1 || got[0].tls {
		t.Errorf("starttls never: %d messages, tls %v", len(got), len(got) > 0 && got[0].tls)
	}

	// always: a server without STARTTLS gets nothing.
	s = &SMTP{Addr: plain.addr, StartTLS: TLSAlways, CAFile: ca, Hello: "backup1.test", Timeout: 5 * time.Second}
	err := SendRun(context.Background(), s, night(), opts("ops@example.test"))
	want := "mail to ops@example.test via " + plain.addr + ": STARTTLS: the server does not offer STARTTLS (starttls = \"always\" refuses"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error = %v, want %q...", err, want)
	}
	if n := len(plain.be.got()); n != 0 {
		t.Errorf("%d messages sent in clear text", n)
	}

	// A certificate from a CA nobody named is refused.
	s = &SMTP{Addr: withTLS.addr, Hello: "backup1.test", Timeout: 5 * time.Second}
	err = SendRun(context.Background(), s, night(), opts("ops@example.test"))
	if err == nil || !strings.Contains(err.Error(), ": TLS handshake: ") || !strings.Contains(err.Error(), "signed by a CA the system trusts") {
		t.Errorf("error = %v, want a TLS handshake failure", err)
	}
	if n := len(withTLS.be.got()); n != 1 {
		t.Errorf("%d messages, want still 1", n)
	}
}

func TestAuth(t *testing.T) {
	tlsCfg, ca := testCA(t)
	users := map[string]string{"tapir": "s3cret pass"}
	tests := []struct {
		name      string
		loginOnly bool
		pass      string
		err       string
	}{
		{name: "plain", pass: "s3cret pass"},
		{name: "login when the server offers only LOGIN", loginOnly: true, pass: "s3cret pass"},
		{name: "wrong password", pass: "guess", err: "AUTH PLAIN as tapir: 535 5.7.8 Authentication failed (check the mail username and the password in "},
		{name: "wrong password LOGIN", loginOnly: true, pass: "guess", err: "AUTH LOGIN as tapir: 535 5.7.8 Authentication failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, &backend{users: users, loginOnly: tc.loginOnly}, tlsCfg, false)
			s := &SMTP{Addr: srv.addr, CAFile: ca, Username: "tapir", PasswordFile: passwordFile(t, tc.pass), Hello: "backup1.test", Timeout: 5 * time.Second}
			err := SendRun(context.Background(), s, night(), opts("ops@example.test"))
			got := srv.be.got()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want %q", err, tc.err)
				}
				if len(got) != 0 {
					t.Errorf("%d messages sent without login", len(got))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].user != "tapir" || !got[0].tls {
				t.Fatalf("received %+v", got)
			}
			checkReport(t, got[0].data, night(), "<ops@example.test>")
		})
	}
}

func TestAuthNotOffered(t *testing.T) {
	srv := startServer(t, &backend{}, nil, false)
	s := &SMTP{Addr: srv.addr, Username: "tapir", PasswordFile: passwordFile(t, "x"), Timeout: 5 * time.Second}
	err := SendRun(context.Background(), s, night(), opts("ops@example.test"))
	if err == nil || !strings.Contains(err.Error(), "AUTH: the server does not offer AUTH (remove the mail username") {
		t.Fatalf("error = %v", err)
	}
}

// A password goes in clear text to this machine only (a local relay on
// 127.0.0.1 is fine); isLoopback decides.
func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true, "127.8.8.8": true,
		"192.0.2.1": false, "smtp.example.com": false, "": false} {
		if got := isLoopback(host); got != want {
			t.Errorf("isLoopback(%q) = %v", host, got)
		}
	}
	srv := startServer(t, &backend{users: map[string]string{"tapir": "pw"}}, nil, true)
	s := &SMTP{Addr: srv.addr, Username: "tapir", PasswordFile: passwordFile(t, "pw"), Timeout: 5 * time.Second}
	if err := SendRun(context.Background(), s, night(), opts("ops@example.test")); err != nil {
		t.Fatal(err)
	}
}

func TestRefusedRecipient(t *testing.T) {
	srv := startServer(t, &backend{refuse: map[string]bool{"nobody@example.test": true, "gone@example.test": true}}, nil, false)
	s := &SMTP{Addr: srv.addr, Timeout: 5 * time.Second}

	err := SendRun(context.Background(), s, night(), opts("ops@example.test", "nobody@example.test"))
	want := "mail to nobody@example.test via " + srv.addr + ": RCPT TO <nobody@example.test>: 550 5.1.1 no such user (sent to the other recipients: ops@example.test)"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
	var me *Error
	if !errors.As(err, &me) || me.Step != "RCPT TO <nobody@example.test>" || me.Reply != "550 5.1.1 no such user" {
		t.Errorf("error details: %+v", me)
	}
	if got := srv.be.got(); len(got) != 1 || strings.Join(got[0].to, ",") != "ops@example.test" {
		t.Errorf("received %d messages (%v)", len(got), got)
	}

	err = SendRun(context.Background(), s, night(), opts("nobody@example.test", "gone@example.test"))
	if err == nil || !strings.Contains(err.Error(), "RCPT TO <nobody@example.test>: 550 5.1.1 no such user") ||
		!strings.Contains(err.Error(), "RCPT TO <gone@example.test>: 550 5.1.1 no such user") || strings.Contains(err.Error(), "sent to") {
		t.Errorf("error = %v", err)
	}
	if n := len(srv.be.got()); n != 1 {
		t.Errorf("%d messages, want still 1", n)
	}
}

func TestServerDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := &SMTP{Addr: addr, Timeout: 5 * time.Second}
	err = SendRun(context.Background(), s, night(), opts("ops@example.test"))
	want := "mail to ops@example.test via " + addr + ": connect: dial tcp " + addr + ": connect: connection refused (is the mail server up and the address right? check the [mail] server setting)"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v\nwant    %s", err, want)
	}
}

// A server that accepts the connection but never speaks: the timeout
// ends the wait, a cancel ends it at once.
func TestSilentServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	// The timeout ends the wait for the greeting: the error says so (a
	// wait that never ends is caught by go test -timeout).
	s := &SMTP{Addr: l.Addr().String(), Timeout: 200 * time.Millisecond}
	err = SendRun(context.Background(), s, night(), opts("ops@example.test"))
	if err == nil || !strings.Contains(err.Error(), ": greeting: ") || !strings.Contains(err.Error(), "i/o timeout") {
		t.Errorf("error = %v", err)
	}

	// So does the caller's context, long before the timeout: its error
	// is the context's, not the timeout's.
	s.Timeout = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = SendRun(ctx, s, night(), opts("ops@example.test"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want the context's", err)
	}
}

func TestAttachJSON(t *testing.T) {
	srv := startServer(t, &backend{}, nil, false)
	s := &SMTP{Addr: srv.addr, Timeout: 5 * time.Second}
	o := opts("ops@example.test")
	o.AttachJSON = true
	r := night()
	if err := SendRun(context.Background(), s, r, o); err != nil {
		t.Fatal(err)
	}
	got := srv.be.got()
	if len(got) != 1 {
		t.Fatalf("%d messages", len(got))
	}
	m, _ := parse(t, got[0].data)
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("Content-Type %q: %v", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	p, err := mr.NextRawPart()
	if err != nil {
		t.Fatal(err)
	}
	if p.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("first part is %q", p.Header.Get("Content-Type"))
	}
	if text := decodeQP(t, p); text != crlf(r.Text()) {
		t.Errorf("first part differs from the report text:\n%s", text)
	}
	p, err = mr.NextRawPart()
	if err != nil {
		t.Fatal(err)
	}
	if ct, fn := p.Header.Get("Content-Type"), p.FileName(); ct != "application/json; charset=utf-8" || fn != "tapir-DailySet1-20250304010000.json" {
		t.Errorf("second part: %q %q", ct, fn)
	}
	js := decodeQP(t, p)
	back, err := report.ParseJSON([]byte(js))
	if err != nil {
		t.Fatalf("attached JSON: %v", err)
	}
	if back.Text() != r.Text() {
		t.Errorf("the attached JSON renders another text")
	}
	if _, err := mr.NextRawPart(); err != io.EOF {
		t.Errorf("a third part: %v", err)
	}
}

func TestSendCheck(t *testing.T) {
	srv := startServer(t, &backend{}, nil, false)
	s := &SMTP{Addr: srv.addr, Timeout: 5 * time.Second}
	c := &report.Check{Org: "DailySet1", Config: "/etc/tapir/tapir.toml", Time: sent,
		Problems: []report.Problem{{Where: "host db1", What: "client agent db1:10080: connection refused"}}}
	if err := SendCheck(context.Background(), s, c, opts("ops@example.test")); err != nil {
		t.Fatal(err)
	}
	got := srv.be.got()
	if len(got) != 1 {
		t.Fatalf("%d messages", len(got))
	}
	m, _ := parse(t, got[0].data)
	if s := m.Header.Get("Subject"); s != "DailySet1 TAPIR PROBLEM: FIX BEFORE RUN, IF POSSIBLE" {
		t.Errorf("Subject = %q", s)
	}
	if n := m.Header.Get("X-Tapir-Problems"); n != "1" {
		t.Errorf("X-Tapir-Problems = %q", n)
	}
	if body := decodeQP(t, m.Body); body != crlf(c.Text()) {
		t.Errorf("body:\n%s", body)
	}
}

func TestMessageBytes(t *testing.T) {
	ok := func() *Message {
		return &Message{From: "Tapir <tapir@backup1.test>", To: []string{"ops@example.test"}, Subject: "Sicherung für März", Date: sent, ID: "x@y", Text: "a\n.\n"}
	}
	b, err := ok().Bytes()
	if err != nil {
		t.Fatal(err)
	}
	m, _ := parse(t, b)
	if s, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject")); s != "Sicherung für März" {
		t.Errorf("Subject decodes to %q", s)
	}
	if !strings.HasPrefix(m.Header.Get("Subject"), "=?utf-8?q?") {
		t.Errorf("non-ASCII subject is not encoded: %q", m.Header.Get("Subject"))
	}
	if m.Header.Get("From") != `"Tapir" <tapir@backup1.test>` || m.Header.Get("Message-ID") != "<x@y>" {
		t.Errorf("headers: %v", m.Header)
	}

	tests := []struct {
		name string
		edit func(m *Message)
		err  string
	}{
		{"bad sender", func(m *Message) { m.From = "tapir" }, `sender "tapir" is not an e-mail address`},
		{"no recipient", func(m *Message) { m.To = nil }, "no recipient: set mailto"},
		{"bad recipient", func(m *Message) { m.To = []string{"ops@example.test", "root"} }, `recipient "root" is not an e-mail address`},
		{"bad header name", func(m *Message) { m.Headers = [][2]string{{"X Bad", "1"}} }, `header field name "X Bad" is not valid`},
		{"header injection in a value", func(m *Message) { m.Headers = [][2]string{{"X-Tapir-Run", "1\nBcc: x"}} }, "header X-Tapir-Run holds a line break"},
		{"quote in an attachment name", func(m *Message) { m.Attachments = []Attachment{{Name: `a".json`, ContentType: "application/json"}} }, "must be one line without quotes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := ok()
			tc.edit(m)
			_, err := m.Bytes()
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error = %v, want %q", err, tc.err)
			}
		})
	}
	// A line break in the subject is encoded, never a new header field.
	evil := ok()
	evil.Subject = "x\r\nBcc: evil@example.test"
	b, err = evil.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	m, _ = parse(t, b)
	if s, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject")); s != evil.Subject || m.Header.Get("Bcc") != "" {
		t.Errorf("subject %q, Bcc %q", s, m.Header.Get("Bcc"))
	}
	if _, err := (&Message{To: []string{"a@b.c"}, From: "x@y.z"}).Bytes(); err != nil {
		t.Errorf("empty text: %v", err)
	}
	if err := (&SMTP{Addr: "127.0.0.1:1"}).Send(context.Background(), &Message{From: "x@y.z"}); !errors.Is(err, ErrNoRecipients) {
		t.Errorf("no recipient: %v", err)
	}
}

func TestSendOn(t *testing.T) {
	okRun := night()
	okRun.DLEs[0].Status, okRun.DLEs[0].Strange = report.StatusOK, nil
	strange := night()
	failed := night()
	failed.DLEs[0].Status = report.StatusFailed
	tests := []struct {
		on                  SendOn
		ok, strange, failed bool
	}{
		{"", true, true, true},
		{SendAll, true, true, true},
		{SendStrange, false, true, true},
		{SendError, false, false, true},
		{SendNever, false, false, false},
	}
	for _, tc := range tests {
		if tc.on.Validate() != nil {
			t.Errorf("%q does not validate", tc.on)
		}
		if got := [3]bool{tc.on.Wants(okRun), tc.on.Wants(strange), tc.on.Wants(failed)}; got != [3]bool{tc.ok, tc.strange, tc.failed} {
			t.Errorf("send_on %q wants ok/strange/failed = %v", tc.on, got)
		}
	}
	if err := SendOn("sometimes").Validate(); err == nil || !strings.Contains(err.Error(), "want all, strange, error or never") {
		t.Errorf("Validate(sometimes) = %v", err)
	}
}

func TestValidate(t *testing.T) {
	_, ca := testCA(t)
	pw := passwordFile(t, "pw")
	tests := []struct {
		name string
		s    SMTP
		err  string
	}{
		{"minimal", SMTP{Addr: "localhost:25"}, ""},
		{"full", SMTP{Addr: "smtp.example.com:587", StartTLS: TLSAlways, CAFile: ca, Username: "u", PasswordFile: pw, Timeout: time.Minute}, ""},
		{"no port", SMTP{Addr: "smtp.example.com"}, `mail server "smtp.example.com": want host:port`},
		{"bad policy", SMTP{Addr: "a:25", StartTLS: "sometimes"}, `mail starttls "sometimes": want auto, always or never`},
		{"user without password", SMTP{Addr: "a:25", Username: "u"}, "no password_file"},
		{"missing password file", SMTP{Addr: "a:25", Username: "u", PasswordFile: "/nonexistent/pw"}, "mail password file: open /nonexistent/pw"},
		{"empty password", SMTP{Addr: "a:25", Username: "u", PasswordFile: passwordFile(t, "")}, "the first line is empty"},
		{"CA not PEM", SMTP{Addr: "a:25", CAFile: pw}, "holds no PEM certificate"},
		{"negative timeout", SMTP{Addr: "a:25", Timeout: -time.Second}, "is negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.Validate()
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error = %v, want %q", err, tc.err)
			}
		})
	}
}

// Package mail sends the run report and the problems of a preflight check
// by e-mail: a Mailer seam, its SMTP implementation over
// github.com/emersion/go-smtp (STARTTLS by policy, AUTH PLAIN or LOGIN with
// a password read from a file), and the composition of RFC 5322 messages
// (UTF-8 text, quoted-printable, CRLF lines, optionally the JSON report as
// a second MIME part). Every error names the recipients, the server, the
// SMTP step and the server's reply. The settings are described in
// docs/format/report.md.
package mail

package mail

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/tapir-backup/tapir/report"
)

// SendOn says which runs are mailed (amanda's send-amreport-on).
type SendOn string

const (
	SendAll     SendOn = "all"     // every run (the default)
	SendStrange SendOn = "strange" // runs that failed, were degraded or are strange
	SendError   SendOn = "error"   // runs that failed
	SendNever   SendOn = "never"
)

// Validate checks the setting.
func (w SendOn) Validate() error {
	switch w {
	case "", SendAll, SendStrange, SendError, SendNever:
		return nil
	}
	return fmt.Errorf("mail send_on %q: want all, strange, error or never", string(w))
}

// Wants reports whether the report of r is to be mailed.
func (w SendOn) Wants(r *report.Run) bool {
	switch w {
	case SendNever:
		return false
	case SendError:
		return r.Failed()
	case SendStrange:
		return r.Failed() || r.Strange()
	}
	return true
}

// Options are what a report mail needs besides the report.
type Options struct {
	From       string   // sender; "" = "tapir@<Hostname>"
	To         []string // recipients (mailto)
	Hostname   string   // this host's name, for the default sender and the Message-ID; "" = os.Hostname()
	AttachJSON bool     // add the run's JSON report as a second MIME part
	Now        func() time.Time
}

func (o Options) header(subject, text string) (*Message, error) {
	host := o.Hostname
	if host == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		host = h
	}
	from := o.From
	if from == "" {
		from = "tapir@" + host
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	id, err := MessageID(host)
	if err != nil {
		return nil, err
	}
	return &Message{From: from, To: o.To, Subject: subject, Date: now(), ID: id, Text: text}, nil
}

// RunMessage is the mail of a run's report: the subject and the text of
// r.Text() (the same bytes as the report file), headers X-Tapir-Run and
// X-Tapir-Status for mail filters, and with AttachJSON the JSON report
// as an attachment named tapir-<org>-<datestamp>.json.
func RunMessage(r *report.Run, o Options) (*Message, error) {
	m, err := o.header(r.Subject(), r.Text())
	if err != nil {
		return nil, err
	}
	m.Headers = [][2]string{{"X-Tapir-Run", r.Datestamp}, {"X-Tapir-Status", r.Status()}}
	if o.AttachJSON {
		js, err := r.JSON()
		if err != nil {
			return nil, err
		}
		m.Attachments = []Attachment{{Name: "tapir-" + r.Org + "-" + r.Datestamp + ".json", ContentType: "application/json; charset=utf-8", Data: js}}
	}
	return m, nil
}

// CheckMessage is the mail of a preflight check (tapir check --mail).
func CheckMessage(c *report.Check, o Options) (*Message, error) {
	m, err := o.header(c.Subject(), c.Text())
	if err != nil {
		return nil, err
	}
	m.Headers = [][2]string{{"X-Tapir-Problems", strconv.Itoa(len(c.Problems))}}
	return m, nil
}

// SendRun mails the report of r.
func SendRun(ctx context.Context, mailer Mailer, r *report.Run, o Options) error {
	m, err := RunMessage(r, o)
	if err != nil {
		return fmt.Errorf("mail the report of run %s: %w", r.Datestamp, err)
	}
	return mailer.Send(ctx, m)
}

// SendCheck mails the outcome of a preflight check. Like amcheck -m, a
// caller usually sends only when c has problems.
func SendCheck(ctx context.Context, mailer Mailer, c *report.Check, o Options) error {
	m, err := CheckMessage(c, o)
	if err != nil {
		return fmt.Errorf("mail the check of %s: %w", c.Config, err)
	}
	return mailer.Send(ctx, m)
}

package recover

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/peterh/liner"

	"github.com/tapir-backup/tapir/image/crypt"
)

// ShellOptions configure a recover session (tapir recover without --file
// or --all).
type ShellOptions struct {
	Server string      // index server host:port
	TLS    *tls.Config // mutual TLS towards it (wire.ClientConfig)
	// Host, Disk and Date are set as by sethost, setdisk and setdate
	// before the first command. Host "" means the host our certificate
	// names when it has images; Disk "" means the host's only DLE if it has
	// just one.
	Host, Disk, Date string
	Lcd              string // local target directory; "" = the current directory
	// SamePrivileges: see Shell.SamePrivileges.
	SamePrivileges bool
	// Identities open encrypted images (see Shell.Identities).
	Identities *crypt.Identities
	// Script holds commands separated by ';' or newlines (-e): they run in
	// order, the first failure ends the session with an error.
	Script string
	// Terminal selects line editing (history, tab completion) on the
	// process's terminal; otherwise commands are read as plain lines from
	// In, and the first failure ends the session with an error.
	Terminal bool
	In       io.Reader
	Out, Err io.Writer
	Now      func() time.Time
}

// ErrSessionFailed is returned (wrapped) when a command of a script or of
// plain-line input failed.
var ErrSessionFailed = errors.New("recover session failed")

// RunShell connects to the index server and runs the shell.
func RunShell(ctx context.Context, o ShellOptions) error {
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Err == nil {
		o.Err = os.Stderr
	}
	if o.In == nil {
		o.In = os.Stdin
	}
	if o.Server == "" {
		return errors.New("no index server given (--server HOST:PORT)")
	}
	lcd := o.Lcd
	if lcd == "" {
		wd, err := os.Getwd()
		if err != nil {
			return fmt.Errorf("local directory: %w", err)
		}
		lcd = wd
	}
	cl, err := Dial(ctx, o.Server, o.TLS)
	if err != nil {
		return err
	}
	defer cl.Close()
	sh := &Shell{Client: cl, Out: o.Out, Now: o.Now, Lcd: lcd, Ctx: ctx, SamePrivileges: o.SamePrivileges, Identities: o.Identities}
	role := strings.Join(cl.Roles, ",")
	fmt.Fprintf(o.Out, "Connected to the index server %s as %s (%s).\n", o.Server, cl.Peer, role)

	var ln *liner.State
	if o.Terminal && o.Script == "" {
		ln = liner.NewLiner()
		defer ln.Close()
		// History survives sessions in ~/.tapir_recover_history.
		if home, err := os.UserHomeDir(); err == nil {
			hist := filepath.Join(home, ".tapir_recover_history")
			if f, err := os.Open(hist); err == nil {
				ln.ReadHistory(f)
				f.Close()
			}
			defer func() {
				if f, err := os.OpenFile(hist, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err == nil {
					ln.WriteHistory(f)
					f.Close()
				}
			}()
		}
		ln.SetCtrlCAborts(true)
		ln.SetTabCompletionStyle(liner.TabPrints)
		ln.SetWordCompleter(sh.Complete)
		sh.Ask = func(q string, def bool) bool {
			hint := " [y/N] "
			if def {
				hint = " [Y/n] "
			}
			for {
				a, err := ln.Prompt(q + hint)
				if err != nil {
					return false
				}
				switch strings.ToLower(strings.TrimSpace(a)) {
				case "":
					return def
				case "y", "yes":
					return true
				case "n", "no":
					return false
				}
			}
		}
	}

	// The starting point.
	host := o.Host
	if host == "" && !cl.Admin {
		host = cl.Peer
	}
	var start []string
	if host != "" {
		start = append(start, "sethost "+quoteWord(host))
		disk := o.Disk
		if disk == "" {
			if dles, err := cl.DLEs(host); err == nil && len(dles) == 1 {
				disk = dles[0]
			}
		}
		if o.Date != "" {
			start = append(start, "setdate "+quoteWord(o.Date))
		}
		if disk != "" {
			start = append(start, "setdisk "+quoteWord(disk))
		}
	} else if o.Date != "" {
		start = append(start, "setdate "+quoteWord(o.Date))
	}
	for _, c := range start {
		if err := sh.Exec(c); err != nil {
			fmt.Fprintln(o.Err, err)
			if ln == nil {
				return fmt.Errorf("%w: %s: %v", ErrSessionFailed, c, err)
			}
		}
	}

	if o.Script != "" {
		for _, c := range splitScript(o.Script) {
			if err := sh.Exec(c); err != nil {
				if errors.Is(err, ErrQuit) {
					return nil
				}
				fmt.Fprintln(o.Err, err)
				return fmt.Errorf("%w: %s", ErrSessionFailed, c)
			}
		}
		return nil
	}
	if ln != nil {
		for {
			line, err := ln.Prompt("recover> ")
			if errors.Is(err, liner.ErrPromptAborted) {
				continue
			}
			if err != nil { // io.EOF: ^D
				fmt.Fprintln(o.Out)
				return nil
			}
			if strings.TrimSpace(line) != "" {
				ln.AppendHistory(line)
			}
			if err := sh.Exec(line); err != nil {
				if errors.Is(err, ErrQuit) {
					return nil
				}
				fmt.Fprintln(o.Out, err)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	sc := bufio.NewScanner(o.In)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if err := sh.Exec(line); err != nil {
			if errors.Is(err, ErrQuit) {
				return nil
			}
			fmt.Fprintln(o.Err, err)
			return fmt.Errorf("%w: %s", ErrSessionFailed, strings.TrimSpace(line))
		}
	}
	return sc.Err()
}

// splitScript splits -e commands at ';' and newlines outside quotes and
// not behind a backslash (tokenize's quoting: "...", '...', $'...').
func splitScript(s string) []string {
	var out []string
	var cur strings.Builder
	quote := byte(0) // '"', '\'', or 'c' inside $'...'
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && quote != '\'' && i+1 < len(s):
			cur.WriteByte(c)
			i++
			c = s[i]
		case quote == 'c':
			if c == '\'' {
				quote = 0
			}
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '$' && i+1 < len(s) && s[i+1] == '\'':
			cur.WriteByte(c)
			i++
			c, quote = s[i], 'c'
		case c == '"' || c == '\'':
			quote = c
		case c == ';' || c == '\n':
			out = append(out, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(c)
	}
	out = append(out, cur.String())
	var cmds []string
	for _, c := range out {
		if c = trimCommand(c); c != "" {
			cmds = append(cmds, c)
		}
	}
	return cmds
}

// trimCommand drops the blanks around a command, but not a blank a
// backslash escapes (`add a\ ` names "a ").
func trimCommand(c string) string {
	c = strings.TrimLeft(c, " \t\r")
	for len(c) > 0 && strings.IndexByte(" \t\r", c[len(c)-1]) >= 0 {
		bs := 0
		for i := len(c) - 2; i >= 0 && c[i] == '\\'; i-- {
			bs++
		}
		if bs%2 == 1 {
			break
		}
		c = c[:len(c)-1]
	}
	return c
}

// quoteWord spells a value given on the command line (--host, --disk,
// --date) as one word of the shell's input.
func quoteWord(s string) string { return EscapeWord(s) }

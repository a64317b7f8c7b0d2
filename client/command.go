package client

import (
	"context"
	"fmt"
	"io"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/wire"
)

// A command DLE (wire.Request.Command): the payload is the standard
// output of a command the administrator allowed (--allow-exec), such as
// `pg_dump -Fc`, framed, compressed, hashed and (when asked) encrypted as
// a walk's tar stream is. There are no index records and no incremental
// state: level 0 only, and no estimate (the server uses the last size).

// cmdWriter feeds a command's standard output to the payload writer and
// stops the command at the first write error.
type cmdWriter struct {
	pw   *image.PayloadWriter
	err  error
	stop context.CancelFunc
}

func (c *cmdWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.pw.Write(p)
	if err != nil {
		c.err = err
		c.stop()
	}
	return n, err
}

// dumpCommand runs s with its standard output as the payload written to
// out as opt says (compression, frame size, bandwidth). It returns the
// run (standard error's tail as its output) even when it fails.
func dumpCommand(ctx context.Context, s execSpec, opt DumpOptions, out io.Writer) (Result, wire.HookRun, error) {
	if opt.Bandwidth > 0 {
		out = wire.NewLimiter(opt.Bandwidth).Writer(ctx, out)
	}
	pw, err := image.NewPayloadWriter(out, image.WriterOptions{Comp: opt.Comp, Level: opt.CompressLevel, FrameSize: opt.FrameSize})
	if err != nil {
		return Result{}, wire.HookRun{Name: s.name, Command: s.argv[0], Exit: -1, Error: err.Error()}, err
	}
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	cw := &cmdWriter{pw: pw, stop: stop}
	s.stdout = cw
	run, err := runExec(cctx, s)
	if cw.err != nil {
		pw.Close()
		run.Error = fmt.Sprintf("stopped: its output could not be sent (%v)", cw.err)
		return Result{}, run, fmt.Errorf("sending the output of command %s: %w (the command was stopped)", oneLine(s.argv[0], 256), cw.err)
	}
	if err != nil {
		pw.Close()
		return Result{}, run, err
	}
	if err := pw.Close(); err != nil {
		return Result{}, run, fmt.Errorf("finish payload: %w", err)
	}
	return Result{Summary: pw.Sum(), Base: -1}, run, nil
}

// runCommandDLE dumps a command DLE: its command's standard output is
// the payload, its standard error's tail goes into its HookRun and, when
// there is any, one warning.
func (a *Agent) runCommandDLE(ctx context.Context, req wire.Request, opt DumpOptions, sess *session, payload io.Writer, warn func(string)) (Result, error) {
	p, err := checkArgv("command", req.Command, a.AllowExec)
	if err != nil {
		return Result{}, err
	}
	res, run, err := dumpCommand(ctx, execSpec{name: "command", what: "command", path: p, argv: req.Command, env: sess.env("command")}, opt, payload)
	sess.record(run)
	if err != nil {
		return Result{}, err
	}
	if last := lastLine(run.Output); last != "" {
		warn(fmt.Sprintf("command %s of %s wrote to its standard error (the report shows its tail): %s", oneLine(req.Command[0], 256), req.DLE, last))
	}
	return res, nil
}

package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// maxFileSize bounds what Parse accepts; a disk list of tens of thousands
// of entries fits comfortably.
const maxFileSize = 16 << 20

// Load reads the configuration file at path and returns it decoded, with
// defaults filled in, relative paths resolved against the file's directory
// and every value validated. Every error is an *Error.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		msg := err.Error()
		var pe *fs.PathError
		if errors.As(err, &pe) {
			msg = pe.Err.Error()
		}
		return nil, &Error{File: path, Msg: "cannot read configuration: " + msg}
	}
	return Parse(path, data)
}

// Parse is Load for a file already read: name is used in errors and to
// resolve relative paths (made absolute against the working directory when
// it is relative). Every error is an *Error.
func Parse(name string, data []byte) (*Config, error) {
	if len(data) > maxFileSize {
		return nil, &Error{File: name, Msg: fmt.Sprintf("file is larger than %s; this is not a tapir configuration", Size(maxFileSize))}
	}
	src := string(data)
	if l := tooDeep(src); l > 0 {
		return nil, &Error{File: name, Line: l, Msg: fmt.Sprintf("arrays or inline tables nested more than %d deep", maxNesting)}
	}
	var raw map[string]any
	md, err := toml.Decode(src, &raw)
	if err != nil {
		return nil, tomlError(name, err, "invalid TOML: ")
	}
	lines := buildLineIndex(src, md)

	// catalog is a string or a [catalog] table: the finisher reads it.
	// vault is a [vault] table or [[vault]] tables: checked and decoded
	// here, each as it is.
	catRaw, hasCat := raw["catalog"]
	delete(raw, "catalog")
	vaultRaw, hasVault := raw["vault"]
	delete(raw, "vault")
	ck := &checker{file: name, lines: lines}
	ck.walk(nil, "", "", raw, configType)
	if hasCat {
		raw["catalog"] = catRaw
	}
	if hasVault {
		raw["vault"] = vaultRaw
		switch vaultRaw.(type) {
		case map[string]any:
			ck.walk([]string{"vault"}, "vault", "[vault]", vaultRaw, vaultType)
		case []map[string]any, []any:
			ck.walk([]string{"vault"}, "vault", "[[vault]]", vaultRaw, reflect.TypeOf([]Vault{}))
		default:
			ck.add([]string{"vault"}, "vault: expected a [vault] table or [[vault]] tables, got %s", describe(vaultRaw))
		}
	}
	if e := first(ck.errs); e != nil {
		return nil, e
	}

	// The vaults are decoded in the same pass, kept aside as a primitive
	// (a table or an array of tables) and decoded into Vaults below.
	var file struct {
		Config
		Vault toml.Primitive `toml:"vault"`
	}
	md, err = toml.Decode(src, &file)
	c := &file.Config
	if err != nil { // the checker should have caught it
		return nil, tomlError(name, err, "")
	}
	if hasVault {
		if _, one := vaultRaw.(map[string]any); one {
			c.Vaults = make([]Vault, 1)
			err = md.PrimitiveDecode(file.Vault, &c.Vaults[0])
		} else {
			err = md.PrimitiveDecode(file.Vault, &c.Vaults)
		}
		if err != nil { // the checker should have caught it
			return nil, tomlError(name, err, "")
		}
	}
	for _, u := range md.Undecoded() { // likewise
		if u[0] != "catalog" {
			return nil, &Error{File: name, Line: lines.lookup(u), Msg: fmt.Sprintf("unknown key %q", u.String())}
		}
	}

	abs, err := filepath.Abs(name)
	if err != nil {
		abs = filepath.Clean(name)
	}
	c.File, c.Dir = abs, filepath.Dir(abs)
	f := &finisher{file: name, raw: raw, lines: lines, c: c}
	f.finish()
	if e := first(f.errs); e != nil {
		return nil, e
	}
	return c, nil
}

var tomlLineRE = regexp.MustCompile(`^toml: line (\d+)(?: \(last key "[^"]*"\))?: `)

// tomlError turns an error of the toml package into an *Error.
func tomlError(name string, err error, prefix string) *Error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &Error{File: name, Line: pe.Position.Line, Msg: prefix + oneLine(pe.Message)}
	}
	msg := err.Error()
	line := 0
	if m := tomlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	return &Error{File: name, Line: line, Msg: prefix + oneLine(strings.TrimPrefix(msg, "toml: "))}
}

// oneLine escapes control characters so that a message stays on one line.
func oneLine(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

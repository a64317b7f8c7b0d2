package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// A name in a backup is any byte string, but a JSON string holds only
// UTF-8: encoding/json turns every byte that is not UTF-8 into U+FFFD, so
// a request for such a path would ask for another name. An IndexRequest
// whose host, dle, path, pattern or paths are not valid UTF-8 carries
// those fields byte for byte in "raw" as well (base64), and the decoder
// puts the bytes back (docs/format/index-protocol.md, "Names that are not
// UTF-8"). A request of UTF-8 names is encoded as before.

// rawFields are the byte-exact values of the fields that are not UTF-8;
// Paths is keyed by the index in Paths.
type rawFields struct {
	Host    []byte         `json:"host,omitempty"`
	DLE     []byte         `json:"dle,omitempty"`
	Path    []byte         `json:"path,omitempty"`
	Pattern []byte         `json:"pattern,omitempty"`
	Paths   map[int][]byte `json:"paths,omitempty"`
}

type plainRequest IndexRequest

type requestJSON struct {
	plainRequest
	Raw *rawFields `json:"raw,omitempty"`
}

// MarshalJSON encodes the request, with "raw" when a name is not UTF-8.
func (r IndexRequest) MarshalJSON() ([]byte, error) {
	var raw rawFields
	some := false
	one := func(s string, dst *[]byte) {
		if !utf8.ValidString(s) {
			*dst, some = []byte(s), true
		}
	}
	one(r.Host, &raw.Host)
	one(r.DLE, &raw.DLE)
	one(r.Path, &raw.Path)
	one(r.Pattern, &raw.Pattern)
	for i, p := range r.Paths {
		if !utf8.ValidString(p) {
			if raw.Paths == nil {
				raw.Paths = map[int][]byte{}
			}
			raw.Paths[i], some = []byte(p), true
		}
	}
	out := requestJSON{plainRequest: plainRequest(r)}
	if some {
		out.Raw = &raw
	}
	return json.Marshal(out)
}

// UnmarshalJSON decodes a request strictly (unknown fields are errors)
// and puts the raw bytes of names that are not UTF-8 in their fields. A
// raw value must stand for its field: present there, and not UTF-8.
func (r *IndexRequest) UnmarshalJSON(b []byte) error {
	var in requestJSON
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&in); err != nil {
		return err
	}
	*r = IndexRequest(in.plainRequest)
	if in.Raw == nil {
		return nil
	}
	one := func(name string, raw []byte, dst *string) error {
		if raw == nil {
			return nil
		}
		if *dst == "" || utf8.Valid(raw) {
			return fmt.Errorf("raw %s is not the bytes of a name that is not UTF-8", name)
		}
		*dst = string(raw)
		return nil
	}
	for _, f := range []struct {
		name string
		raw  []byte
		dst  *string
	}{{"host", in.Raw.Host, &r.Host}, {"dle", in.Raw.DLE, &r.DLE}, {"path", in.Raw.Path, &r.Path}, {"pattern", in.Raw.Pattern, &r.Pattern}} {
		if err := one(f.name, f.raw, f.dst); err != nil {
			return err
		}
	}
	for i, p := range in.Raw.Paths {
		if i < 0 || i >= len(r.Paths) {
			return fmt.Errorf("raw paths: index %d is not one of the %d paths", i, len(r.Paths))
		}
		if err := one(fmt.Sprintf("paths[%d]", i), p, &r.Paths[i]); err != nil {
			return err
		}
	}
	return nil
}

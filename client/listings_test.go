package client

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tapir-backup/tapir/image"
	"github.com/tapir-backup/tapir/index/tarscan"
	"github.com/tapir-backup/tapir/wire"
)

// Asked for the listings, the agent sends every directory's GNU.dumpdir
// exactly as the tar stream carries it, in several L frames for a large
// tree; not asked, it sends none. Its reply names the listings feature.
func TestAgentSendsListings(t *testing.T) {
	r := agentPair(t)
	src := t.TempDir()
	long := strings.Repeat("n", 200)
	for i := range 1500 { // about 300 KiB of listings: more than one batch
		d := filepath.Join(src, fmt.Sprintf("d%04d", i))
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, long), []byte("x"), 0o644)
	}
	os.WriteFile(filepath.Join(src, "top"), []byte("top"), 0o644)
	for _, asked := range []bool{true, false} {
		t.Run(fmt.Sprint("asked=", asked), func(t *testing.T) {
			var data bytes.Buffer
			var features []string
			got := map[string]string{}
			roots := 0
			_, err := r.Dump(context.Background(), wire.Request{DLE: src, Compress: "none", Listings: asked}, DumpHandler{
				Reply: func(rep *wire.Reply) error { features = rep.Features; return nil },
				Data:  func(b []byte) error { data.Write(b); return nil },
				Index: func(wire.IndexRecord) error { return nil },
				Frame: func(image.Frame) error { return nil },
				Warn:  func(w string) { t.Errorf("warning: %s", w) },
				Listing: func(l wire.ListingRecord) error {
					if l.Dir == "" {
						roots++
					}
					if _, dup := got[l.Dir]; dup {
						t.Errorf("listing of %q sent twice", l.Dir)
					}
					got[l.Dir] = l.Dumpdir
					return nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(features, FeatureListings) {
				t.Errorf("features %v lack %q", features, FeatureListings)
			}
			if !asked {
				if len(got) != 0 {
					t.Errorf("%d listings sent unasked", len(got))
				}
				return
			}
			want, err := tarscan.Listings(&data)
			if err != nil {
				t.Fatal(err)
			}
			if len(want) != 1501 || !maps.Equal(got, want) {
				t.Errorf("got %d listings, the tar stream holds %d (equal: %v)", len(got), len(want), maps.Equal(got, want))
			}
			if roots != 1 {
				t.Errorf("the root's listing came %d times", roots)
			}
		})
	}
}

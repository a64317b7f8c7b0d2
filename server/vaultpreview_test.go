package server

import (
	"strings"
	"testing"
)

// The previews of what a volume's reuse or removal loses count copies:
// with two nights' fulls vaulted, `tapir admin rmvolume` (without --yes)
// and `tapir tape next --explain` (which reuses the first night's volume)
// say the full stays, read from its copy, and rmvolume of the newest
// full's volume names no broken chain; rmvolume of an offsite volume says
// only the copy goes. Without the copies, the same previews say the fulls
// leave the catalog and the newest chain breaks.
func TestVaultPreviewsCountCopies(t *testing.T) {
	for _, vaulted := range []bool{false, true} {
		s := newSite(t, "")
		withVault(t, s, 2, "")
		s.cfg.Tapecycle = 1
		s.cfg.DLEs = s.cfg.DLEs[:1]
		s.nights(t, 0, 2)
		if vaulted {
			if res, err := vault(t, s, VaultOptions{}); err != nil || len(res.Copied) != 2 {
				t.Fatalf("vault: %v", err)
			}
		}
		res, err := RemoveVolume(t.Context(), s.cfg, RmVolumeOptions{Label: "test-001"}, Deps{Log: testLogger(t)})
		if err != nil || len(res.Dumps) != 1 {
			t.Fatalf("rmvolume preview: %v %+v", err, res)
		}
		var out strings.Builder
		if err := WriteRemoveVolume(&out, res); err != nil {
			t.Fatal(err)
		}
		newest, err := RemoveVolume(t.Context(), s.cfg, RmVolumeOptions{Label: "test-002"}, Deps{Log: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{false: 1, true: 0}[vaulted]; len(newest.Broken) != want {
			t.Errorf("vaulted %v: rmvolume of the newest full's volume breaks %d chains, want %d", vaulted, len(newest.Broken), want)
		}
		var explain strings.Builder
		if err := ExplainNext(t.Context(), s.cfg, Deps{Log: testLogger(t)}, &explain); err != nil {
			t.Fatal(err)
		}
		if !vaulted {
			if res.Dumps[0].CopyOn != nil || !strings.Contains(out.String(), "would leave the catalog") {
				t.Errorf("without a copy, the preview must say the full leaves:\n%s", out.String())
			}
			if strings.Contains(explain.String(), "read from their copies") || !strings.Contains(explain.String(), "would leave the catalog") {
				t.Errorf("without a copy, --explain names a copy:\n%s", explain.String())
			}
			continue
		}
		if res.Dumps[0].CopyOn == nil || !strings.HasPrefix(res.Dumps[0].CopyOn[0], "test-Offsite-") {
			t.Errorf("with the full vaulted, rmvolume preview: %+v", res)
		}
		if !strings.Contains(out.String(), "stay in the catalog, read from their copies") || strings.Contains(out.String(), "would leave the catalog") {
			t.Errorf("with the full vaulted, the preview overstates the loss:\n%s", out.String())
		}
		if !strings.Contains(explain.String(), "read from their copies") || strings.Contains(explain.String(), "would leave the catalog") {
			t.Errorf("with the full vaulted, --explain overstates the loss:\n%s", explain.String())
		}
		off := res.Dumps[0].CopyOn[0]
		res, err = RemoveVolume(t.Context(), s.cfg, RmVolumeOptions{Label: off}, Deps{Log: testLogger(t)})
		if err != nil || len(res.Dumps) != 0 || len(res.Copies) != 2 || len(res.Broken) != 0 {
			t.Fatalf("rmvolume preview of the offsite volume: %v %+v", err, res)
		}
		out.Reset()
		WriteRemoveVolume(&out, res)
		if !strings.Contains(out.String(), "the copies (tapir vault) of 2 images on it would be dropped") {
			t.Errorf("rmvolume preview of the offsite volume:\n%s", out.String())
		}
	}
}

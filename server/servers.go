package server

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/tapir-backup/tapir/config"
)

// TakeOver records that this machine now runs the server of cfg ([server]
// name), which the catalog says runs on another host: the machine was
// replaced. It takes the run lock, so no night of this server runs here
// meanwhile, and the catalog's lock of the name, so none runs elsewhere.
// It returns the host the name was registered on.
func TakeOver(ctx context.Context, cfg *config.Config) (was string, err error) {
	cat, done, err := openLocked(cfg)
	if err != nil {
		return "", err
	}
	defer done()
	ss, err := cat.Servers(ctx)
	if err != nil {
		return "", err
	}
	for _, s := range ss {
		if s.Name == cfg.Server.Name {
			was = s.Host
		}
	}
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("take over server %q: this machine's host name: %w", cfg.Server.Name, err)
	}
	return was, cat.RegisterServer(ctx, host, cfg.Server.Advertise, time.Now(), true)
}

// ForgetServer removes the registration of another server of the catalog
// (a server taken out of service): its host and index address. Its runs,
// images and volumes stay in the catalog, still its own.
func ForgetServer(ctx context.Context, cfg *config.Config, name string) error {
	if name == cfg.Server.Name {
		return fmt.Errorf("%q is this server ([server] name in %s): forget it from another server's configuration, or use --take-over on the machine that replaces it", name, cfg.File)
	}
	cat, err := OpenCatalog(cfg)
	if err != nil {
		return err
	}
	defer cat.Close()
	return cat.ForgetServer(ctx, name)
}

package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index/catalog"
	"github.com/tapir-backup/tapir/index/indexd"
	"github.com/tapir-backup/tapir/taper"
	"github.com/tapir-backup/tapir/wire"
)

// ServeIndex runs the index and restore server of cfg on ln until ctx
// ends (a ListenFunc for the daemon; `tapir index-server` runs it alone).
// It opens its own catalog connection and, for a disk changer, its own
// changer: loading a slot for a restore never unloads the volume the taper
// is writing.
func ServeIndex(ctx context.Context, cfg *config.Config, ln net.Listener, log *slog.Logger) error {
	tlsCfg, err := wire.ServerConfig(wire.Files{CA: cfg.TLS.CA, Cert: cfg.TLS.Cert, Key: cfg.TLS.Key}, wire.RoleClient, wire.RoleAdmin, wire.RoleServer)
	if err != nil {
		return err
	}
	cat, err := OpenCatalog(cfg)
	if err != nil {
		return err
	}
	defer cat.Close()
	vols, err := VolumeSource(cfg, Deps{}, cat, log)
	if errors.Is(err, taper.ErrNoChangerRoot) {
		// An unmounted vtape disk: browsing needs only the catalog, and
		// restores work once the disk is back.
		log.Warn("index server: the disk changer's directory does not exist; restores wait for it", "err", err)
		vols, err = &laterVolumes{cfg: cfg, cat: cat, log: log}, nil
	}
	if err != nil {
		return err
	}
	// The other servers of the catalog find this one's index server by
	// the address it registers (a night registers it too).
	if host, err := os.Hostname(); err != nil {
		log.Warn("index server: this machine's host name is unknown; the address of this index server is not registered", "err", err)
	} else if err := cat.RegisterServer(ctx, host, cfg.Server.Advertise, time.Now(), false); err != nil {
		log.Error("index server: could not register this server's index address in the catalog; the other servers cannot fetch frames of its volumes", "advertise", cfg.Server.Advertise, "err", err)
	}
	srv := &indexd.Server{Catalog: cat, TLS: tlsCfg, Log: log, Holding: holdingDisks(cfg), Volumes: vols, Peers: Peers(cfg, log)}
	return srv.Serve(ctx, ln)
}

// Peers is how this server reads the images the other tapir servers of
// its catalog hold (restore from anywhere): from their index servers, with
// this server's certificate (role tapir-server), each checked against the
// name in the address it registered.
func Peers(cfg *config.Config, log *slog.Logger) *indexd.Peers {
	files := wire.Files{CA: cfg.TLS.CA, Cert: cfg.TLS.Cert, Key: cfg.TLS.Key}
	return &indexd.Peers{Self: cfg.Server.Name, Log: log, TLS: func(serverName string) (*tls.Config, error) {
		return wire.ClientConfig(files, serverName)
	}}
}

// laterVolumes is the volume source of an index server whose disk changer
// directory did not exist when it started (an unmounted disk; it is never
// created): every request tries again, so that restores work once the
// disk is mounted, and until then fail saying why.
type laterVolumes struct {
	cfg *config.Config
	cat *catalog.Catalog
	log *slog.Logger

	mu sync.Mutex
	vs indexd.VolumeSource
}

func (l *laterVolumes) get() (indexd.VolumeSource, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.vs != nil {
		return l.vs, nil
	}
	vs, err := VolumeSource(l.cfg, Deps{}, l.cat, l.log)
	if err != nil {
		return nil, fmt.Errorf("%w (%w)", err, indexd.ErrVolumeMissing)
	}
	l.vs = vs
	return vs, nil
}

// Properties declares the disk changer's one drive and directory.
func (l *laterVolumes) Properties() indexd.SourceProperties {
	if vs, err := l.get(); err == nil {
		return vs.Properties()
	}
	return indexd.SourceProperties{Drives: 1, Where: "the disk changer " + l.cfg.Changer.Path, Dir: l.cfg.Changer.Path}
}

// Locate says where a volume is, once the changer's directory exists.
func (l *laterVolumes) Locate(ctx context.Context, label string) (string, error) {
	vs, err := l.get()
	if err != nil {
		return "", err
	}
	return vs.Locate(ctx, label)
}

// Open loads a volume, once the changer's directory exists.
func (l *laterVolumes) Open(ctx context.Context, label string, ask indexd.Ask) (taper.Device, func(), error) {
	vs, err := l.get()
	if err != nil {
		return nil, nil, err
	}
	return vs.Open(ctx, label, ask)
}

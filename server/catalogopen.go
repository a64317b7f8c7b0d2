package server

import (
	"github.com/tapir-backup/tapir/config"
	"github.com/tapir-backup/tapir/index/catalog"
)

// OpenCatalog opens the catalog of cfg for this server ([server] name):
// what it records is this server's, and its runs, holding images and
// volumes are kept apart from those of the other servers sharing the
// catalog (catalog.SetServer).
func OpenCatalog(cfg *config.Config) (*catalog.Catalog, error) {
	cat, err := catalog.Open(cfg.Catalog)
	if err != nil {
		return nil, err
	}
	if err := cat.SetServer(cfg.Server.Name); err != nil {
		cat.Close()
		return nil, err
	}
	return cat, nil
}

package rebuild

import (
	"errors"
	"io"

	"github.com/tapir-backup/tapir/image/crypt"
)

// damageSeen remembers whether a read failed because the ciphertext is
// damaged (the error may reach the caller wrapped without %w).
type damageSeen struct {
	r       io.ReaderAt
	damaged bool
}

func (d *damageSeen) ReadAt(p []byte, off int64) (int, error) {
	n, err := d.r.ReadAt(p, off)
	if errors.Is(err, crypt.ErrDamaged) {
		d.damaged = true
	}
	return n, err
}

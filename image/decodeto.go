package image

// DecodeTo is Decode into dst's storage (grown as needed; its contents
// are dropped) instead of the decoder's own buffer, so that one decoder
// can decode frames that are then held at once, each in its own buffer:
// the shell's restore decodes chunks on several goroutines, ahead of the
// extraction, and hands them back in order. With no compression it returns
// in itself. Errors are Decode's.
func (d *FrameDecoder) DecodeTo(dst, in []byte, f Frame) ([]byte, error) {
	return d.decodeTo(dst, in, f)
}

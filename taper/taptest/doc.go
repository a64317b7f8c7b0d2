// Package taptest offers a changer whose drive misbehaves on purpose — it
// stalls in the middle of an image, or fails — so that the callers of the
// taper (the run driver, benchmarks) can prove that a slow or broken drive
// makes the dumpers wait, never lose data, and never hang a run for good.
// It wraps a real changer (a disk changer of vtapes, or any other), so
// everything that is written is real.
package taptest

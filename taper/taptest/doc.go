// Package taptest offers a changer whose drive misbehaves on purpose — it
// stalls in the middle of an image, or fails — so that the callers of the
// taper (the run driver, benchmarks) can prove that a slow or broken drive
// makes the dumpers wait, never lose data, and never hang a run for good.
// It wraps a real changer (a disk changer of vtapes, or any other), so
// everything that is written is real: it forwards every method of the
// changer it holds (a field, not an embedded interface), and its devices
// declare exactly what the wrapped devices declare, so that the code under
// test takes the paths it takes in production. It passes the changer
// conformance suite (taper/changertest) around every changer.
package taptest

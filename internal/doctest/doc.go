// Package doctest helps the tests that hold the format documents
// (docs/format/*.md) to the code: it reads a document from the module's
// tree and compares the names a document lists with the names the code
// has. It is imported by tests only.
package doctest
